"""uvicorn's httptools protocol with a bound on the time a client takes to send its headers.

uvicorn bounds the idle time between two requests on a keep-alive connection
(`timeout_keep_alive`) but not the time to send one request's headers: a client that opens
connections and trickles header bytes keeps each open for as long as it likes. Here the
clock starts when the connection opens (and, on a kept-alive connection, at the first byte
of the next request) and stops when the headers are complete; past `header_timeout_s` the
gateway answers 408 and closes. The body has its own bound in the request path
(`--body-timeout-s`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.api.errors import error_envelope


def _timeout_response() -> bytes:
    body = json.dumps(
        error_envelope(408, "The request headers did not arrive in time.", code="request_timeout")
    ).encode()
    head = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
    )
    return head + body


_TIMEOUT_RESPONSE = _timeout_response()


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` that closes a connection whose request headers take too long."""

    header_timeout_s: ClassVar[float] = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_header_timer()  # the first byte of a request on a kept-alive connection

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # An answer is still going out on this connection; the next request's headers
            # wait behind it (pipelining). Their clock restarts once it is done.
            self._arm_header_timer()
            return
        self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


def header_timeout_protocol(header_timeout_s: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class for uvicorn's `http=` with this header timeout."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": header_timeout_s})
