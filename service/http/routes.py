"""Thin routes: health, the three public API paths, and token-protected metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from contract.facts import HEALTH_ALIAS_PATH, HEALTH_LIVE_PATH, HEALTH_READY_PATH, METRICS_PATH
from service.api.errors import error_response
from service.api.protocol import CHAT, COMPLETIONS, MODELS, PUBLIC_ENDPOINTS
from service.lifecycle.state import ServiceState
from service.pipeline.auth import bearer_token, token_matches
from service.pipeline.gateway import Gateway


def _state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.service
    return state


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


# Every path this app answers other than with 404: the only values of a `route` metric label.
KNOWN_PATHS = frozenset(
    {HEALTH_LIVE_PATH, HEALTH_READY_PATH, HEALTH_ALIAS_PATH, METRICS_PATH, *(e.path for e in PUBLIC_ENDPOINTS)}
)

health = APIRouter()


@health.get(HEALTH_LIVE_PATH, include_in_schema=False)
async def live(request: Request) -> JSONResponse:
    state = _state(request)
    body: dict[str, Any] = state.describe()
    return JSONResponse(body, status_code=200 if state.engine.health.live else 503)


@health.get(HEALTH_READY_PATH, include_in_schema=False)
@health.get(HEALTH_ALIAS_PATH, include_in_schema=False)
async def ready(request: Request) -> JSONResponse:
    state = _state(request)
    body: dict[str, Any] = state.describe()
    return JSONResponse(body, status_code=200 if state.ready else 503)


api = APIRouter()


@api.post(CHAT.path, include_in_schema=False)
async def chat_completions(request: Request) -> Response:
    return await _gateway(request).handle(request, CHAT, request.state.request_id)


@api.post(COMPLETIONS.path, include_in_schema=False)
async def completions(request: Request) -> Response:
    return await _gateway(request).handle(request, COMPLETIONS, request.state.request_id)


@api.get(MODELS.path, include_in_schema=False)
async def models(request: Request) -> Response:
    return await _gateway(request).handle(request, MODELS, request.state.request_id)


metrics = APIRouter()


@metrics.get(METRICS_PATH, include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    state = _state(request)
    expected = state.settings.metrics_token
    presented = bearer_token(request.headers.get("authorization"))
    if expected is None or presented is None or not token_matches(presented, [expected.get_secret_value().encode()]):
        return error_response(401, "Metrics need 'Authorization: Bearer <metrics token>'.", code="invalid_api_key")
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
