"""The part of the OpenAI request schema the gateway enforces before the engine sees it.

Only the fields the gateway relies on are typed; every other OpenAI parameter passes
through untouched (``extra="allow"``) so the engine stays the judge of what it supports.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError

from contract.facts import CHAT_COMPLETIONS_PATH, COMPLETIONS_PATH, MODELS_PATH

MAX_JSON_DEPTH = 64  # objects and arrays inside each other; OpenAI requests need a handful
_INT64 = 1 << 63
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")  # \ud800-\udfff: a surrogate, maybe a lone one


class InvalidJsonError(ValueError):
    """A body the gateway does not accept as JSON (answered 400 `invalid_json`)."""


def _no_constant(name: str) -> Any:
    raise InvalidJsonError(f"{name} is not a JSON value")


def parse_json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object, or InvalidJsonError naming the problem.

    Stricter than `json.loads`: UTF-8 only, at most MAX_JSON_DEPTH levels of nesting, no
    NaN/Infinity, integers within 64 bits, finite floats, no lone UTF-16 surrogates (they
    cannot be encoded as UTF-8 for the engine)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJsonError(f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidJsonError(f"nested deeper than {MAX_JSON_DEPTH} levels") from None
    except json.JSONDecodeError as exc:
        raise InvalidJsonError(str(exc)) from None
    except InvalidJsonError:
        raise
    except ValueError:  # an integer too long for Python to convert (> 4300 digits)
        raise InvalidJsonError("an integer does not fit in 64 bits") from None
    if not isinstance(value, dict):
        raise InvalidJsonError("expected a JSON object")
    _check_values(value, surrogates=_SURROGATE_ESCAPE.search(body) is not None)
    return value


def _check_values(root: dict[str, Any], *, surrogates: bool) -> None:
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise InvalidJsonError(f"nested deeper than {MAX_JSON_DEPTH} levels")
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items)
            if surrogates and isinstance(value, dict):
                stack.extend((key, depth) for key in value)
        elif isinstance(value, bool) or value is None:
            continue
        elif isinstance(value, int):
            if not -_INT64 <= value < _INT64:
                raise InvalidJsonError("an integer does not fit in 64 bits")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidJsonError("a number is out of range")
        elif surrogates and isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidJsonError("a string holds a lone UTF-16 surrogate (not valid Unicode)") from None


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class ChatMessage(_Lenient):
    role: StrictStr
    content: StrictStr | list[dict[str, Any]] | None = None


class StreamOptions(_Lenient):
    include_usage: StrictBool | None = None


class _GenerationRequest(_Lenient):
    model: StrictStr = Field(min_length=1)
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    n: StrictInt | None = Field(default=None, ge=1)
    best_of: StrictInt | None = Field(default=None, ge=1)

    def sequences(self) -> int:
        """Sequences the engine generates for this request: n (or best_of) per prompt."""
        return max(self.n or 1, self.best_of or 1) * self.prompt_count()

    def prompt_count(self) -> int:
        return 1


class ChatCompletionRequest(_GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)

    def prompt_chars(self) -> int:
        total = 0
        for message in self.messages:
            if isinstance(message.content, str):
                total += len(message.content)
            elif message.content is not None:
                for part in message.content:
                    text = part.get("text")
                    if isinstance(text, str):
                        total += len(text)
        return total


class CompletionRequest(_GenerationRequest):
    prompt: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]

    def prompt_count(self) -> int:
        """A batch (a list of strings, or of token-id lists) is one generation per prompt."""
        if isinstance(self.prompt, str) or not self.prompt or isinstance(self.prompt[0], int):
            return 1
        return len(self.prompt)

    def prompt_chars(self) -> int:
        if isinstance(self.prompt, str):
            return len(self.prompt)
        total = 0
        for item in self.prompt:
            total += len(item) if isinstance(item, str | list) else 1
        return total


def first_error(exc: ValidationError) -> tuple[str, str]:
    """(param, message) of the first validation error, in the client's field names."""
    error = exc.errors(include_url=False)[0]
    param = ".".join(str(part) for part in error["loc"]) or "body"
    return param, f"{param}: {error['msg']}"


# Request fields from which the engine builds a grammar (a JSON schema, a regex, a list of
# choices, an EBNF grammar): vLLM's `structured_outputs` and `response_format`, and the
# `guided_*` fields that engines before vLLM 0.12 (a remote pool) still obey.
CONSTRAINT_FIELDS = (
    "structured_outputs",
    "response_format",
    "guided_json",
    "guided_regex",
    "guided_choice",
    "guided_grammar",
    "guided_whitespace_pattern",
    "structural_tag",
)


def constraint_sizes(payload: dict[str, Any]) -> dict[str, int]:
    """Bytes of each structured-output constraint in a request (as compact JSON). Tool
    definitions count when `tool_choice` forces a call: the engine derives a schema from them."""
    sizes = {
        name: len(json.dumps(payload[name], separators=(",", ":"), ensure_ascii=False).encode())
        for name in CONSTRAINT_FIELDS
        if payload.get(name) is not None
    }
    tool_choice = payload.get("tool_choice")
    if payload.get("tools") and (tool_choice == "required" or isinstance(tool_choice, dict)):
        sizes["tools"] = len(json.dumps(payload["tools"], separators=(",", ":"), ensure_ascii=False).encode())
    return sizes


# --- the endpoints ------------------------------------------------------------------------------

EndpointKind = Literal["chat", "completions"]  # the two that generate (cache keys, token estimates)


@dataclass(frozen=True)
class Endpoint:
    """One public API endpoint: where it is, and the schema its body is validated against."""

    path: str
    method: str
    schema: type[ChatCompletionRequest] | type[CompletionRequest] | None
    kind: EndpointKind | None = None  # None: generates nothing (the model list)


CHAT = Endpoint(CHAT_COMPLETIONS_PATH, "POST", ChatCompletionRequest, "chat")
COMPLETIONS = Endpoint(COMPLETIONS_PATH, "POST", CompletionRequest, "completions")
MODELS = Endpoint(MODELS_PATH, "GET", None)
PUBLIC_ENDPOINTS = (CHAT, COMPLETIONS, MODELS)
