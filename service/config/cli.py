"""The command line of `python -m service`: every ServiceSettings field is a flag and an
environment variable; `--print-settings` shows the settings in force."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, get_origin

from pydantic import BaseModel, ValidationError

from contract.instance import ENV_PREFIX
from service.config.settings import ServiceSettings


def flag_name(field: str) -> str:
    return "--" + field.replace("_", "-")


def env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("a JSON object is required")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description=(
            "OpenAI-compatible gateway that supervises a vLLM engine. "
            f"Every flag is also an environment variable: {ENV_PREFIX}<FLAG> (e.g. {env_name('served_model_name')})."
        ),
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument(
        "--print-settings",
        action="store_true",
        default=False,
        help="print the settings in force (flags, environment, defaults; secrets masked) as JSON and exit",
    )
    for name, info in ServiceSettings.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            continue  # a nested section: environment only (LLM_SERVICE_FEATURES__CACHE__TTL_S)
        help_text = f"{info.description or ''} [{env_name(name)}]"
        if info.annotation is bool:
            parser.add_argument(flag_name(name), action=argparse.BooleanOptionalAction, help=help_text)
        elif get_origin(info.annotation) is list:
            parser.add_argument(flag_name(name), metavar="A,B", help=help_text)
        elif get_origin(info.annotation) is dict:
            parser.add_argument(flag_name(name), metavar="JSON", type=_json_object, help=help_text)
        else:
            parser.add_argument(flag_name(name), metavar=name.upper(), help=help_text)
    return parser


def _describe(error: Any) -> str:
    location = [str(part) for part in error["loc"] if not isinstance(part, int)]
    message = str(error["msg"]).removeprefix("Value error, ")
    if not location:  # a model-level check names its field first: "model: ..."
        return message
    field = location[0]
    if len(location) > 1:  # inside a nested section: only the environment sets it
        return f"{'.'.join(location)} ({ENV_PREFIX}{'__'.join(part.upper() for part in location)}): {message}"
    return f"{flag_name(field)} ({env_name(field)}): {message}"


def flagged(message: str) -> str:
    """'field: why' -> '--field (LLM_SERVICE_FIELD): why' when the field is a setting."""
    field, sep, rest = message.partition(": ")
    if sep and field in ServiceSettings.model_fields:
        return f"{flag_name(field)} ({env_name(field)}): {rest}"
    return message


def parse_settings(argv: Sequence[str]) -> ServiceSettings:
    """Settings from flags over the environment; raises SystemExit(2) with one line per mistake."""
    args = vars(build_parser().parse_args(argv))
    args.pop("print_settings", None)
    try:
        return ServiceSettings(**args)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            print(f"error: {_describe(error)}", file=sys.stderr)
        raise SystemExit(2) from None


def settings_document(settings: ServiceSettings) -> dict[str, Any]:
    """The settings in force as JSON-ready data: the features resolved, secrets masked."""
    document: dict[str, Any] = settings.model_dump(mode="json")
    document["features"] = settings.resolved_features().model_dump(mode="json")
    return document


def print_settings(settings: ServiceSettings) -> int:
    """`--print-settings`: the settings in force as JSON on stdout; 2 when they cannot resolve."""
    try:
        print(json.dumps(settings_document(settings), indent=2, sort_keys=True))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
