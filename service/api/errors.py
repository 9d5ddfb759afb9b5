"""OpenAI error envelopes: {"error": {"message", "type", "param", "code"}}.

The status codes are the ones the official `openai` SDK maps to its typed exceptions:
400 BadRequestError, 401 AuthenticationError, 404 NotFoundError, 413 (APIStatusError),
429 RateLimitError, 5xx InternalServerError.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.responses import Response

_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "internal_server_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "upstream_timeout",
}


class ApiError(Exception):
    """An error answered to the client in the OpenAI envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def envelope(self) -> dict[str, dict[str, str | None]]:
        return error_envelope(self.status, self.message, param=self.param, code=self.code)

    def response(self) -> Response:
        return error_response(self.status, self.message, param=self.param, code=self.code, headers=self.headers)


def error_envelope(
    status: int, message: str, *, param: str | None = None, code: str | None = None
) -> dict[str, dict[str, str | None]]:
    error_type = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


def error_response(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = json.dumps(error_envelope(status, message, param=param, code=code)).encode()
    return Response(body, status_code=status, media_type="application/json", headers=headers)


# ---------------------------------------------------------------------------------------
# Errors the engine answered: mapped to the gateway's envelope

# An engine or pool address, a loopback or private one, with an optional port and path.
_INTERNAL_ADDRESS = re.compile(
    r"(?:https?://)?(?:localhost|127(?:\.\d{1,3}){3}|0\.0\.0\.0|10(?:\.\d{1,3}){3}|192\.168(?:\.\d{1,3}){2}"
    r"|172\.(?:1[6-9]|2\d|3[01])(?:\.\d{1,3}){2}|169\.254(?:\.\d{1,3}){2}|\[::1\])(?::\d{1,5})?(?:/[^\s'\",)]*)?",
    re.IGNORECASE,
)
# One pydantic error as vLLM prints it: {'type': ..., 'loc': 'body.x' or ('body', 'x'), 'msg': '...', 'input': ...}
_PYDANTIC_ERROR = re.compile(
    r"'loc':\s*(?P<loc>\([^)]*\)|'[^']*'|\"[^\"]*\"),\s*'msg':\s*(?P<q>['\"])(?P<msg>.*?)(?P=q)", re.DOTALL
)
_PYDANTIC_LINK = re.compile(r"\s*For further information visit https://errors\.pydantic\.dev\S*")
_CONTEXT_LENGTH = re.compile(r"maximum context length|max_model_len|context length", re.IGNORECASE)
_MESSAGE_LIMIT = 300
_GENERIC_ENGINE_FAILURE = "The engine failed to process the request."


def _clean_param(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    parts = [part.strip("'\" ") for part in value.strip("()").split(",") if part.strip("'\" ")]
    if parts and parts[0] == "body":
        parts = parts[1:]
    dotted = ".".join(parts) if len(parts) > 1 else (parts[0] if parts else "")
    return dotted.removeprefix("body.") or None


def _engine_message(body: bytes) -> tuple[str, str | None]:
    """(message, param) from an engine's error body: vLLM's envelope (`code` an integer),
    its older flat form, or FastAPI's `{"detail": ...}`."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return "", None
    if not isinstance(data, dict):
        return "", None
    nested = data.get("error")
    error: dict[str, Any] = nested if isinstance(nested, dict) else data
    message = error.get("message", error.get("detail", ""))
    return (message if isinstance(message, str) else ""), _clean_param(error.get("param"))


def sanitized_engine_message(message: str, *, hide: tuple[str, ...] = ()) -> tuple[str, str | None]:
    """A message a client may read: pydantic internals reduced to `field: problem`, engine
    addresses and the strings in `hide` (the model's local path) removed, one short line.
    Returns (message, param found in a pydantic error)."""
    param = None
    details = list(_PYDANTIC_ERROR.finditer(message))
    if details:
        parts = []
        for match in details[:3]:
            field = _clean_param(match["loc"])
            param = param or field
            parts.append(f"{field}: {match['msg']}" if field else match["msg"])
        message = "; ".join(parts)
    message = _PYDANTIC_LINK.sub("", message)
    message = _INTERNAL_ADDRESS.sub("the engine", message)
    for secret in hide:
        if secret:
            message = message.replace(secret, "the model")
    message = " ".join(message.split())
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 3].rstrip() + "..."
    return message, param


def engine_error(status: int, body: bytes, *, hide: tuple[str, ...] = ()) -> ApiError:
    """The gateway's error for an error the engine (or a remote pool) answered.

    Client mistakes keep their status with a string `code` and a cleaned message; anything
    the engine got wrong itself (5xx, or a pool refusing the gateway's own key) is a 502
    whose message says nothing about the engine's internals."""
    raw, param = _engine_message(body)
    message, found = sanitized_engine_message(raw, hide=hide)
    param = param or found
    if status >= 500 or status in (401, 403):
        return ApiError(502, _GENERIC_ENGINE_FAILURE, code="engine_error")
    message = message or f"The engine rejected the request (HTTP {status})."
    if status == 404:
        code = "model_not_found" if "model" in message.lower() else "not_found"
        return ApiError(404, message, param=param, code=code)
    if status == 413:
        return ApiError(413, message, param=param, code="request_too_large")
    if status == 429:
        return ApiError(429, message, param=param, code="overloaded")
    code = "context_length_exceeded" if _CONTEXT_LENGTH.search(message) else "invalid_value"
    return ApiError(400 if status == 422 else status, message, param=param, code=code)
