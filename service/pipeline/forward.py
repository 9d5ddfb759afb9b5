"""The engine call of one validated request: forward it, relay the answer, count its tokens.

The engine time limit (`--engine-time-limit-s`) runs from the call: a non-streamed answer must
be complete within it, a stream is aborted when it passes. A client that leaves before its
answer is complete has the engine request aborted (the connection closes, the engine stops
generating). Engine failures become the gateway's errors: 503 when the engine never saw the
request (safe to retry elsewhere), 502 when it failed after, 504 at the time limit, and an
error the engine answered in the gateway's envelope without the engine's internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.responses import Response
from starlette.types import Receive

from service.api.errors import ApiError, engine_error
from service.api.protocol import Endpoint
from service.config.settings import ServiceSettings
from service.observability.metrics import GatewayMetrics
from service.pipeline.request import PreparedRequest, RequestCutError
from service.upstream.client import EngineClient, EngineUnavailableError, forwardable_headers
from service.upstream.pool import UpstreamError
from service.upstream.relay import TIME_LIMIT_CODE, PassthroughResponse, StreamRelay, UsageTap, usage_in

T = TypeVar("T")

log = logging.getLogger("service.proxy")


class EngineForwarder:
    """`await forwarder(engine, prepared)`: the engine's answer to one request, as a response."""

    def __init__(self, settings: ServiceSettings, metrics: GatewayMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        # Strings an engine error must not show a client: where the model lives on disk.
        self._hide = tuple(item for item in (settings.model,) if item and item != settings.served_model_name)

    async def __call__(self, engine: EngineClient, prepared: PreparedRequest) -> Response:
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
