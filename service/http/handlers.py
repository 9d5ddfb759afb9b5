"""The framework's own errors, answered in the OpenAI envelope like the gateway's."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from service.api.errors import error_response


async def http_error(_request: Request, exc: Exception) -> Response:
    """404 for unknown paths, 405 for a wrong method, ...: the envelope, the status kept."""
    assert isinstance(exc, HTTPException)
    message = "Not found." if exc.status_code == 404 else str(exc.detail)
    return error_response(exc.status_code, message, headers=dict(exc.headers or {}))


async def validation_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, f"Invalid request: {exc.errors()[0].get('msg', 'invalid')}.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
