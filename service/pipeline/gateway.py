"""The request path: gate, authenticate, take the key's slot, read, validate, then the feature chain.

Every public API request goes through `Gateway.handle`. After validation the feature chain
(`service.pipeline.chain`: rate limits, pools, languages, cache, deadline) takes over and calls
back into the gateway's forwarder for the engine.

What one client can hold is bounded before it can hold much: a key's in-flight slots are
taken before its body is read (`--max-in-flight-per-key`), the body must arrive within
`--body-timeout-s`, and one engine request (a stream too) may run `--engine-time-limit-s`.
A client that leaves while its answer is generated has the engine request aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive

from service.config.settings import ServiceSettings
from service.engine.health import EngineHealth, EnginePhase
from service.http.auth import ANONYMOUS_KEY, ApiKeyAuth
from service.http.errors import ApiError, engine_error
from service.http.middleware import after_response
from service.http.protocol import (
    CHAT,
    COMPLETIONS,
    Endpoint,
    InvalidJsonError,
    constraint_sizes,
    first_error,
    parse_json_object,
)
from service.lifecycle.drain import DrainController
from service.observability.metrics import GatewayMetrics
from service.pipeline.keyslots import KeySlots
from service.upstream.client import EngineClient, EngineUnavailableError, forwardable_headers
from service.upstream.pool import UpstreamError
from service.upstream.relay import TIME_LIMIT_CODE, PassthroughResponse, StreamEnd, StreamRelay, UsageTap, usage_in

T = TypeVar("T")

log = logging.getLogger("service.proxy")

_SERVING_PHASES = frozenset({EnginePhase.READY, EnginePhase.PROBE_FAILING})


@dataclass
class PreparedRequest:
    """A validated request, as the feature chain and the forwarder see it."""

    endpoint: Endpoint
    request_id: str
    payload: dict[str, Any] = field(default_factory=dict)
    parsed: BaseModel | None = None
    body: bytes = b""
    stream: bool = False
    # The gateway added stream_options.include_usage for its token metrics: strip that chunk.
    strip_usage: bool = False
    started: float = field(default_factory=time.perf_counter)
    api_key: str = ANONYMOUS_KEY  # the caller's identity (its key), for rate limits and the cache scope
    # The client's side of the connection: a disconnect while the engine works aborts it.
    receive: Receive | None = None
    # Told how a relayed stream ended: (the engine's usage or None, ran to its end).
    on_stream_end: StreamEnd | None = None


class RequestCutError(ApiError):
    """The gateway stopped a request the engine had started on: the client left (499) or
    the engine time limit passed (504). What the engine generated is unknown."""


Forward = Callable[[EngineClient, PreparedRequest], Awaitable[Response]]


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
        self.metrics = metrics
        self._in_flight = in_flight
        self.features = features
        self.key_slots = KeySlots(settings.max_in_flight_per_key, retry_after_s=settings.retry_after_s)
        # Strings an engine error must not show a client: where the model lives on disk.
        self._hide = tuple(item for item in (settings.model,) if item and item != settings.served_model_name)

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
            return await self.features.handle(request, prepared, self._forward)
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

    async def _forward(self, engine: EngineClient, prepared: PreparedRequest) -> Response:
        """The engine's answer. The engine time limit runs from here: a non-streamed answer must
        be complete within it, a stream is aborted when it passes. A client that leaves before
        the answer is complete has the engine request aborted (RequestCutError 499)."""
        endpoint = prepared.endpoint
        limit_s = self.settings.engine_time_limit_s
        deadline = asyncio.get_running_loop().time() + limit_s
        self.metrics.engine_requests.labels(endpoint.path).inc()
        try:
            async with asyncio.timeout_at(deadline):
                upstream = await _unless_client_leaves(
                    engine.open(endpoint.method, endpoint.path, prepared.body, request_id=prepared.request_id),
                    prepared.receive,
                )
                headers = forwardable_headers(upstream.raw_headers)
                if prepared.stream and upstream.status_code == 200:
                    return self._relay(upstream, headers, prepared, deadline)
                try:
                    body = await _unless_client_leaves(upstream.aread(), prepared.receive)
                finally:
                    await upstream.aclose()
        except TimeoutError:
            log.warning("engine time limit passed", extra={"engine": engine.name, "limit_s": limit_s})
            raise RequestCutError(
                504, f"The request held the engine past its time limit of {limit_s:g} s.", code=TIME_LIMIT_CODE
            ) from None
        except EngineUnavailableError as exc:
            log.warning("engine request failed", extra={"engine": engine.name, "error": str(exc)})
            if not exc.request_sent:  # the engine never saw it: 503, safe for the client or LB to retry
                retry = {"Retry-After": str(self.settings.retry_after_s)}
                raise ApiError(503, "Engine unavailable; retry.", code="engine_unavailable", headers=retry) from exc
            raise ApiError(502, "The engine failed to answer.", code="engine_unavailable") from exc
        except UpstreamError as exc:
            log.warning("engine answer broke", extra={"engine": engine.name, "error": str(exc)})
            raise ApiError(502, "The engine failed to answer.", code="engine_unavailable") from exc
        if upstream.status_code != 200:
            error = engine_error(upstream.status_code, body, hide=self._hide)
            detail = body[:500].decode(errors="replace")
            extra = {"engine": engine.name, "engine_status": upstream.status_code, "error": detail}
            log.info("engine refused the request", extra=extra)
            raise error
        if endpoint.schema is not None:
            usage = usage_in(body)
            if usage is not None:
                self._observe_tokens(endpoint, usage)
        return PassthroughResponse(body, upstream.status_code, headers)

    def _relay(
        self, upstream: Any, headers: list[tuple[bytes, bytes]], prepared: PreparedRequest, deadline: float
    ) -> StreamRelay:
        endpoint, started = prepared.endpoint, prepared.started
        ttft = self.metrics.time_to_first_token.labels(endpoint.path)
        on_stream_end = prepared.on_stream_end

        def ended(usage: dict[str, Any] | None, completed: bool) -> None:
            if usage is not None:
                self._observe_tokens(endpoint, usage)
            if on_stream_end is not None:
                on_stream_end(usage, completed)

        return StreamRelay(
            upstream,
            headers,
            tap=UsageTap(strip=prepared.strip_usage),
            on_first_piece=lambda: ttft.observe(time.perf_counter() - started),
            on_end=ended,
            deadline=deadline,
        )

    def _observe_tokens(self, endpoint: Endpoint, usage: dict[str, Any]) -> None:
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if isinstance(prompt, int):
            self.metrics.prompt_tokens.labels(endpoint.path).inc(prompt)
        if isinstance(completion, int):
            self.metrics.completion_tokens.labels(endpoint.path).inc(completion)


async def _unless_client_leaves(work: Awaitable[T], receive: Receive | None) -> T:
    """`work`, cancelled (and RequestCutError 499 raised) if the client disconnects first.
    Cancelling an engine request closes its connection, so the engine aborts it."""
    if receive is None:
        return await work
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(receive))
    try:
        await asyncio.wait((task, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if task.cancelled() or not task.done():
        raise RequestCutError(499, "The client closed the request.", code="client_disconnected")
    return task.result()


async def _disconnected(receive: Receive) -> None:
    """Returns when the client has gone (the body, if any, is read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass
