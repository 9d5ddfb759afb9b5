"""A lean HTTP/1.1 client for the engine hot path: asyncio protocol + httptools, pooled keep-alive.

The relay's cost per streamed token is what limits the gateway's throughput, so the data path
avoids every per-chunk layer it can: bytes arrive in `data_received`, httptools (C) strips the
chunked framing and hands the payload to `on_body`, and the consumer takes everything buffered
in one piece. No HTTP parsing in Python, no anyio cancel scopes, no pool scan per request.

Connections are reused last-in first-out and dropped after `keepalive_expiry_s` idle (below the
engine's own keep-alive, so one is never reused just as the engine closes it). An idempotent
request (GET) on a reused connection that closes before any response byte is retried once on a
fresh one; a generation is not (the engine may have seen it). `read_timeout_s` bounds the wait for
the headers and for each body piece.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools

_PAUSE_AT_BYTES = 1 << 20  # stop reading the engine while this much is waiting for a slow client


class UpstreamError(Exception):
    """The engine connection failed, closed early, timed out or sent a malformed response.

    `request_sent` is False when the request never left the gateway (no connection, or no
    free one): the engine cannot have acted on it, so it is safe to send again elsewhere.
    """

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class UpstreamConnectError(UpstreamError):
    """No connection could be made (nothing was sent)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, request_sent=False)


class UpstreamTimeoutError(UpstreamError):
    """The engine did not answer (or connect) in time."""


class UpstreamTimeLimitError(UpstreamError):
    """The gateway stopped the request: it held the engine past its time limit."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int
    prefix: str = ""  # a base URL's path ("/engine" in http://pool:8000/engine), prepended to every path

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"engine url: expected http(s)://host[:port], got {base_url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> bytes:
        return f"{self.host}:{self.port}".encode()


class UpstreamResponse:
    """One streamed engine response. Read it with `next_chunk()` or `aread()`; always `aclose()`."""

    def __init__(self, connection: _Connection, read_timeout_s: float, release: Callable[[bool], None]) -> None:
        self._connection = connection
        self._read_timeout_s = read_timeout_s
        self._release = release
        self._loop = asyncio.get_running_loop()
        self.status_code = 0
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.keep_alive = False
        self.received_bytes = False
        self._headers_done = False
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._complete = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.raw_headers:
            if key == name:
                return value
        return None

    # --- fed by the connection (event loop callbacks) ---------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _headers_complete(self, status: int, keep_alive: bool) -> None:
        self.status_code = status
        self.keep_alive = keep_alive
        self._headers_done = True
        self._wake()

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _PAUSE_AT_BYTES:
            self._connection.pause()
        self._wake()

    def _message_complete(self) -> None:
        self._complete = True
        self._wake()

    def _fail(self, error: UpstreamError) -> None:
        if not self._complete and self._error is None:
            self._error = error
        self._wake()

    # --- the consumer ---------------------------------------------------------------------------

    async def _wait(self) -> None:
        waiter = self._loop.create_future()
        self._waiter = waiter
        timer = self._loop.call_later(self._read_timeout_s, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def wait_headers(self) -> None:
        while not self._headers_done:
            if self._error is not None:
                raise self._error
            await self._wait()

    async def next_chunk(self) -> bytes:
        """Everything received since the last call (de-chunked body bytes); b"" at the end."""
        while True:
            chunks = self._chunks
            if chunks:
                data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self._buffered = 0
                self._connection.resume()
                return data
            if self._error is not None:
                raise self._error
            if self._complete:
                await self.aclose()
                return b""
            await self._wait()

    async def aread(self) -> bytes:
        parts: list[bytes] = []
        while chunk := await self.next_chunk():
            parts.append(chunk)
        return b"".join(parts)

    def abort(self, reason: str, *, error: type[UpstreamError] = UpstreamError) -> None:
        """Stop now: the engine sees the connection close (and aborts the generation); the
        consumer's next read raises `error(reason)`."""
        self._fail(error(reason))
        self._connection.close()

    async def aclose(self) -> None:
        """Give the connection back when the message is complete, else close it (the engine aborts)."""
        if self._closed:
            return
        self._closed = True
        self._release(self._complete and self.keep_alive and self._error is None)


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(UpstreamTimeoutError("engine read timed out"))


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection; httptools calls the `on_*` methods while `data_received` feeds it."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: UpstreamResponse | None = None
        self.closed = False
        self.idle_since = time.monotonic()
        self._paused = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:  # bytes nobody asked for: the connection is unusable
            self.close()
            return
        response.received_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            response._fail(UpstreamError(f"malformed engine response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.response is not None:
            self.response._fail(UpstreamError("engine closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        if self.response is not None:
            self.response.raw_headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.response is not None:
            self.response._headers_complete(self.parser.get_status_code(), self.parser.should_keep_alive())

    def on_body(self, body: bytes) -> None:
        if self.response is not None:
            self.response._feed(body)

    def on_message_complete(self) -> None:
        if self.response is not None:
            self.response._message_complete()

    # used by the pool and the response
    def send(self, response: UpstreamResponse, request: bytes) -> None:
        assert self.transport is not None
        self.response = response
        self.transport.write(request)

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class UpstreamPool:
    """Keep-alive connections to one origin, at most `max_connections` open at a time."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float,
        read_timeout_s: float,
        max_connections: int,
        keepalive_expiry_s: float = 4.0,
    ) -> None:
        self._origin = Origin.parse(base_url)
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._keepalive_expiry_s = keepalive_expiry_s
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: list[_Connection] = []
        self._ssl: ssl.SSLContext | None = None

    @property
    def origin(self) -> Origin:
        return self._origin

    def rebase(self, base_url: str) -> None:
        """Point at another origin (a restarted engine on a new port); idle connections drop."""
        self._origin = Origin.parse(base_url)
        self._drop_idle()

    async def request(self, method: str, path: str, body: bytes, headers: bytes) -> UpstreamResponse:
        """Send one request; returns once the status and headers are in. `headers`: extra header lines."""
        origin = self._origin
        target = (origin.prefix + path).encode()
        head = b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method.encode(), target, origin.host_header)
        if body:
            head += b"content-length: %d\r\n" % len(body)
        request = head + headers + b"\r\n" + body
        # A closed pooled connection without an answer is ambiguous: the engine may have closed it
        # while idle (never saw the request) or died while generating. Only a request that is safe
        # to send twice is retried; the 4 s idle expiry (below vLLM's 5 s) keeps the first case rare.
        idempotent = method in ("GET", "HEAD")
        if self._slots.locked():  # every connection busy: wait for one, as long as a connect may take
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    await self._slots.acquire()
            except TimeoutError as exc:
                raise UpstreamTimeoutError("no free engine connection (pool exhausted)", request_sent=False) from exc
        else:
            await self._slots.acquire()
        connection: _Connection | None = None
        try:
            for attempt in (1, 2):
                connection, reused = await self._checkout(origin)
                release = functools.partial(self._checkin, connection)
                response = UpstreamResponse(connection, self._read_timeout_s, release)
                connection.send(response, request)
                try:
                    await response.wait_headers()
                except UpstreamError:
                    if idempotent and reused and connection.closed and not response.received_bytes and attempt == 1:
                        continue  # most likely the engine had closed this idle connection: ask again
                    raise
                return response  # from here on the response owns the connection and the slot
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException:  # failed, timed out or cancelled before the headers: nothing to reuse
            if connection is not None:
                connection.response = None
                connection.close()
            self._slots.release()
            raise

    async def _checkout(self, origin: Origin) -> tuple[_Connection, bool]:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            fresh = now - connection.idle_since < self._keepalive_expiry_s
            if not connection.closed and fresh and connection.origin == origin:
                return connection, True
            connection.close()
        loop = asyncio.get_running_loop()
        if origin.scheme == "https" and self._ssl is None:
            self._ssl = ssl.create_default_context()
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                _transport, connection = await loop.create_connection(
                    lambda: _Connection(origin),
                    origin.host,
                    origin.port,
                    ssl=self._ssl if origin.scheme == "https" else None,
                )
        except TimeoutError as exc:
            raise UpstreamTimeoutError(f"connect to {origin.host}:{origin.port} timed out", request_sent=False) from exc
        except OSError as exc:
            raise UpstreamConnectError(f"connect to {origin.host}:{origin.port} failed: {exc.strerror or exc}") from exc
        return connection, False

    def _checkin(self, connection: _Connection, reusable: bool) -> None:
        self._slots.release()
        connection.response = None
        if reusable and not connection.closed:
            connection.resume()
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()

    def _drop_idle(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    async def aclose(self) -> None:
        self._drop_idle()
