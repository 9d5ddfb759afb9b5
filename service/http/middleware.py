"""One pure-ASGI middleware: request id, in-flight count, latency metric, access log, and the
last word on errors nobody else answered.

It touches only the `http.response.start` message; body messages (one per streamed piece)
pass straight through. Successful requests are logged only with `--access-log`.

Metric labels come from a fixed set of known paths (`known_paths`); every other path is
`other`, so no request can create a new time series. An exception that escapes the app is
answered here, with a 500 in the OpenAI envelope that carries the request id, and logged
with it (the framework's own handler runs outside this middleware, where neither exists).
Callbacks registered with `after_response` run once the response is fully sent (a stream
included), whatever happened.
"""

from __future__ import annotations

import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_envelope
from service.lifecycle.inflight import InFlight, after_response_callbacks
from service.observability.logs import REQUEST_ID_HEADER, request_id_from, request_id_var
from service.observability.metrics import GatewayMetrics

log = logging.getLogger("service.access")

_REQUEST_ID_BYTES = REQUEST_ID_HEADER.encode()
OTHER_ROUTE = "other"  # the metric label of every path outside the known set


class GatewayMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: GatewayMetrics,
        in_flight: InFlight,
        api_paths: frozenset[str],
        known_paths: frozenset[str] = frozenset(),
        access_log: bool = False,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.metrics = metrics
        self.in_flight = in_flight
        self.api_paths = api_paths
        self.known_paths = api_paths | known_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_BYTES:
                incoming = value.decode("latin-1")
                break
        request_id = request_id_from(incoming)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = request_id_var.set(request_id)
        path: str = scope["path"]
        is_api = path in self.api_paths
        status = 500
        response_started = False
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        if is_api:
            self.in_flight.count += 1
            self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            log.error(
                "unhandled error",
                exc_info=exc,
                extra={"method": scope["method"], "path": path},
            )
            if not response_started:
                await self._internal_error(send_with_id)
            else:
                raise  # the status line is gone; the server closes the connection
        finally:
            elapsed = time.perf_counter() - started
            for callback in after_response_callbacks(state):
                callback()
            if is_api:
                self.in_flight.count -= 1
                self.metrics.in_flight.dec()
            route = path if path in self.known_paths else OTHER_ROUTE
            self.metrics.request_latency.labels(route, str(status)).observe(elapsed)
            if status >= 400 or (is_api and self.access_log):
                log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": path,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )
            request_id_var.reset(token)

    @staticmethod
    async def _internal_error(send: Send) -> None:
        body = json.dumps(error_envelope(500, "Internal error in the gateway.", code="internal_error")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})
