"""One pure-ASGI middleware: request id, in-flight count, latency metric and access log.

It touches only the `http.response.start` message; body messages (one per streamed piece)
pass straight through. Successful requests are logged only with `--access-log`.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.logs import request_id_from, request_id_var
from service.metrics import GatewayMetrics

log = logging.getLogger("service.access")

REQUEST_ID_HEADER = "x-request-id"


class InFlight:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> int:
        return self.count


class GatewayMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: GatewayMetrics,
        in_flight: InFlight,
        api_paths: frozenset[str],
        access_log: bool = False,
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.metrics = metrics
        self.in_flight = in_flight
        self.api_paths = api_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = request_id_from(incoming)
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        path: str = scope["path"]
        is_api = path in self.api_paths
        status = 500
        header = (REQUEST_ID_HEADER.encode(), request_id.encode())

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        if is_api:
            self.in_flight.count += 1
            self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            if is_api:
                self.in_flight.count -= 1
                self.metrics.in_flight.dec()
            route = path if is_api or path.startswith("/health") or path == "/metrics" else "other"
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
