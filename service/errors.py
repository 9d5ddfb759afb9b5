"""OpenAI error envelopes: {"error": {"message", "type", "param", "code"}}.

The status codes are the ones the official `openai` SDK maps to its typed exceptions:
400 BadRequestError, 401 AuthenticationError, 404 NotFoundError, 413 (APIStatusError),
429 RateLimitError, 5xx InternalServerError.
"""

from __future__ import annotations

import json

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
