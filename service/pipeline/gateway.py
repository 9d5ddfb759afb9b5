"""The request path: gate, authenticate, take the key's slot, read, validate, then the feature chain.

Every public API request goes through `Gateway.handle`. After validation the feature chain
(`service.pipeline.chain`: rate limits, pools, languages, cache, deadline) takes over and calls
the forwarder (`service.pipeline.forward`) for the engine.

What one client can hold is bounded before it can hold much: a key's in-flight slots are
taken before its body is read (`--max-in-flight-per-key`), the body must arrive within
`--body-timeout-s`, and one engine request (a stream too) may run `--engine-time-limit-s`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Protocol

from pydantic import ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from service.api.errors import ApiError
from service.api.protocol import (
    CHAT,
    COMPLETIONS,
    Endpoint,
    InvalidJsonError,
    constraint_sizes,
    first_error,
    parse_json_object,
)
from service.config.settings import ServiceSettings
from service.engine.health import EngineHealth, EnginePhase
from service.lifecycle.drain import DrainController
from service.lifecycle.inflight import after_response
from service.observability.metrics import GatewayMetrics
from service.pipeline.auth import ApiKeyAuth
from service.pipeline.forward import EngineForwarder
from service.pipeline.keyslots import KeySlots
from service.pipeline.request import Forward, PreparedRequest

_SERVING_PHASES = frozenset({EnginePhase.READY, EnginePhase.PROBE_FAILING})


class RequestFeatures(Protocol):
    def check_model(self, model: str) -> None:
        """Raise a 404 ApiError unless `model` is served here."""
        ...

    async def handle(self, request: Request, prepared: PreparedRequest, forward: Forward) -> Response:
        """Answer a validated API request, calling `forward` for the engine when needed."""
        ...


class Gateway:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        health: EngineHealth,
        drain: DrainController,
        auth: ApiKeyAuth,
        metrics: GatewayMetrics,
        in_flight: Callable[[], int],
        features: RequestFeatures,
    ) -> None:
        self.settings = settings
        self.health = health
        self.drain = drain
        self.auth = auth
        self._in_flight = in_flight
        self.features = features
        self.key_slots = KeySlots(settings.max_in_flight_per_key, retry_after_s=settings.retry_after_s)
        self.forward = EngineForwarder(settings, metrics)

    async def handle(self, request: Request, endpoint: Endpoint, request_id: str) -> Response:
        body_pending = endpoint.schema is not None  # a body the client may still be sending
        try:
            self._gate()
            api_key = self.auth.check(request.headers.get("authorization"))
            after_response(request.scope.setdefault("state", {}), self.key_slots.acquire(api_key))
            prepared = PreparedRequest(
                endpoint=endpoint, request_id=request_id, api_key=api_key, receive=request.receive
            )
            if endpoint.schema is not None:
                body = await self._read_body(request)
                body_pending = False
                self._prepare(body, prepared)
            return await self.features.handle(request, prepared, self.forward)
        except ApiError as exc:
            if body_pending:  # the rest of the body would be read as the next request: close instead
                exc.headers = {**exc.headers, "Connection": "close"}
            return exc.response()

    def _gate(self) -> None:
        retry = {"Retry-After": str(self.settings.retry_after_s)}
        if self.drain.rejecting:
            raise ApiError(503, "This instance is draining; retry on another.", code="draining", headers=retry)
        if self.health.phase not in _SERVING_PHASES:
            raise ApiError(503, f"Engine not ready: {self.health.reason}.", code="engine_unavailable", headers=retry)
        if self._in_flight() > self.settings.max_in_flight:
            raise ApiError(429, "Too many requests in flight on this instance.", code="overloaded", headers=retry)

    def _prepare(self, body: bytes, prepared: PreparedRequest) -> None:
        endpoint = prepared.endpoint
        assert endpoint.schema is not None
        try:
            payload = parse_json_object(body)
        except InvalidJsonError as exc:
            raise ApiError(400, f"Invalid JSON body: {exc}.", code="invalid_json") from None
        try:
            parsed = endpoint.schema.model_validate(payload)
        except ValidationError as exc:
            param, message = first_error(exc)
            raise ApiError(400, f"Invalid request: {message}.", param=param, code="invalid_value") from None
        self.features.check_model(parsed.model)
        settings = self.settings
        cap = settings.max_tokens_cap
        for name in ("max_tokens", "max_completion_tokens"):
            value = getattr(parsed, name)
            if value is not None and value > cap:
                raise ApiError(400, f"{name} is {value}; the maximum is {cap}.", param=name, code="max_tokens_exceeded")
        if parsed.sequences() > settings.max_n:
            param = "best_of" if (parsed.best_of or 0) > (parsed.n or 1) else "n"
            batch = f" for each of {parsed.prompt_count()} prompts" if parsed.prompt_count() > 1 else ""
            raise ApiError(
                400,
                f"The request asks for {parsed.sequences()} sequences ({param}={getattr(parsed, param) or 1}{batch}); "
                f"the maximum is {settings.max_n}.",
                param=param,
                code="invalid_value",
            )
        if parsed.prompt_chars() > settings.max_prompt_chars:
            raise ApiError(
                400,
                f"Prompt is {parsed.prompt_chars()} characters; the maximum is {settings.max_prompt_chars}.",
                param="messages" if endpoint is CHAT else "prompt",
                code="context_length_exceeded",
            )
        constraints = constraint_sizes(payload)
        if sum(constraints.values()) > settings.max_constraint_bytes:
            name = max(constraints, key=constraints.__getitem__)
            raise ApiError(
                400,
                f"Structured-output constraints are {sum(constraints.values())} bytes ({name}: {constraints[name]}); "
                f"the maximum is {settings.max_constraint_bytes}.",
                param=name,
                code="constraint_too_large",
            )
        if endpoint is COMPLETIONS:
            # vLLM's completions obey only max_tokens: the client's max_completion_tokens, else the cap.
            if parsed.max_tokens is None:
                payload["max_tokens"] = parsed.max_completion_tokens or cap
        elif parsed.max_tokens is None and parsed.max_completion_tokens is None:
            payload["max_tokens"] = cap  # the cap also bounds requests that leave it open
        prepared.stream = bool(parsed.stream)
        if prepared.stream and not (parsed.stream_options and parsed.stream_options.include_usage):
            options = dict(payload.get("stream_options") or {})
            options["include_usage"] = True
            # Without include_usage the engine ignores continuous_usage_stats: keep it that way.
            options.pop("continuous_usage_stats", None)
            payload["stream_options"] = options
            prepared.strip_usage = True
        prepared.payload = payload
        prepared.parsed = parsed
        prepared.body = json.dumps(payload, separators=(",", ":")).encode()

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        too_large = ApiError(413, f"Request body exceeds {limit} bytes.", code="request_too_large")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        timeout_s = self.settings.body_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise too_large
                    chunks.append(chunk)
        except TimeoutError:
            raise ApiError(
                408, f"The request body did not arrive within {timeout_s:g} s.", code="request_timeout"
            ) from None
        except ClientDisconnect as exc:
            raise ApiError(400, "Client disconnected while sending the body.", code="client_disconnected") from exc
        return b"".join(chunks)
