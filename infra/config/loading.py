"""Reading a fleet file: `load_fleet(path)` either returns a `Fleet` or raises `FleetConfigError`
carrying one `FieldError` per mistake, so a CLI can print one line each and exit 2."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from infra.config.schema import Fleet
from infra.config.validation import FieldError, FleetConfigError, pydantic_errors, semantic_errors

DEFAULT_FLEET_FILE = Path(__file__).resolve().parents[2] / "regions.yaml"


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, list | dict):
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a scalar", key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_fleet(data: object, source: str = "<fleet>") -> Fleet:
    """Validate already-parsed data (a mapping) into a Fleet, or raise FleetConfigError."""
    if data is None:
        raise FleetConfigError(source, [FieldError("", "file is empty; it needs at least 'global' and 'regions'")])
    if not isinstance(data, Mapping):
        raise FleetConfigError(
            source, [FieldError("", f"top level must be a mapping of keys, got {type(data).__name__}")]
        )
    try:
        fleet = Fleet.model_validate(dict(data))
    except ValidationError as exc:
        raise FleetConfigError(source, pydantic_errors(exc)) from None
    errors = semantic_errors(fleet)
    if errors:
        raise FleetConfigError(source, errors)
    return fleet


def parse_fleet_text(text: str, source: str = "<fleet>") -> Fleet:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise FleetConfigError(source, [FieldError("", f"YAML syntax error at {where}{what}")]) from None
    except yaml.YAMLError as exc:
        raise FleetConfigError(source, [FieldError("", f"YAML syntax error: {exc}")]) from None
    return parse_fleet(data, source)


def load_fleet(path: str | Path | None = None) -> Fleet:
    """Read and validate a fleet file (default: the repository's regions.yaml)."""
    p = Path(path) if path is not None else DEFAULT_FLEET_FILE
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FleetConfigError(str(p), [FieldError("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetConfigError(str(p), [FieldError("", f"cannot read file: {exc}")]) from None
    return parse_fleet_text(text, str(p))
