"""The lean relay: the upstream pool against a real local HTTP/1.1 server, and the usage tap."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from devkit.proc import free_port
from service.upstream.pool import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamPool,
    UpstreamTimeoutError,
)
from service.upstream.relay import UsageTap, usage_in

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    return head, await reader.readexactly(length) if length else b""


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@asynccontextmanager
async def _server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A local server; yields its base URL and a list with its connection count."""
    connections = [0]

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        try:
            await handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    port = free_port()
    server = await asyncio.start_server(on_connect, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()
        await server.wait_closed()


def _pool(base: str, *, read_timeout_s: float = 5.0) -> UpstreamPool:
    return UpstreamPool(base, connect_timeout_s=2.0, read_timeout_s=read_timeout_s, max_connections=8)


async def _stream_events(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep-alive: answer every request with three SSE events, each in its own HTTP chunk."""
    while True:
        _head, body = await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        for index in range(3):
            writer.write(_chunk(b'data: {"n":%d,"echo":%s}\n\n' % (index, body or b"null")))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        await writer.drain()


def test_stream_pieces_and_keep_alive() -> None:
    async def run() -> None:
        async with _server(_stream_events) as (base, connections):
            pool = _pool(base)
            for _ in range(3):
                response = await pool.request("POST", "/v1/x", b'{"a":1}', b"x-request-id: r1\r\n")
                assert response.status_code == 200
                assert response.header(b"content-type") == b"text/event-stream"
                pieces = []
                while piece := await response.next_chunk():
                    pieces.append(piece)
                await response.aclose()
                # De-chunked, byte for byte as the server wrote them.
                expected = b"".join(b'data: {"n":%d,"echo":{"a":1}}\n\n' % i for i in range(3))
                assert b"".join(pieces) == expected
            assert connections[0] == 1  # one kept-alive connection served all three
            await pool.aclose()

    asyncio.run(run())


def test_stale_keep_alive_connection_retried_for_get_only() -> None:
    async def one_answer_per_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        await _read_request(reader)  # the next request on this kept-alive connection: closed unanswered

    async def run() -> None:
        async with _server(one_answer_per_connection) as (base, connections):
            pool = _pool(base)
            for _ in range(2):  # the second GET meets the closing connection and is asked again
                response = await pool.request("GET", "/v1/models", b"", b"")
                assert await response.aread() == b"ok"
                await response.aclose()
            assert connections[0] == 2
            # A generation is never sent twice: the engine may have seen it before the connection died.
            with pytest.raises(UpstreamError, match="closed the connection"):
                await pool.request("POST", "/v1/completions", b"{}", b"")
            assert connections[0] == 2
            await pool.aclose()

    asyncio.run(run())


def test_read_timeout_and_connect_error() -> None:
    async def silent(reader: asyncio.StreamReader, _writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    async def run() -> None:
        async with _server(silent) as (base, _connections):
            pool = _pool(base, read_timeout_s=0.2)
            with pytest.raises(UpstreamTimeoutError) as late:
                await pool.request("GET", "/v1/models", b"", b"")
            assert late.value.request_sent  # the engine may have acted on it
            await pool.aclose()
        closed = _pool(f"http://127.0.0.1:{free_port()}")
        with pytest.raises(UpstreamConnectError) as refused:
            await closed.request("GET", "/v1/models", b"", b"")
        assert not refused.value.request_sent

    asyncio.run(run())


def test_abort_closes_the_engine_connection() -> None:
    seen_eof = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(_chunk(b"data: {}\n\n"))
        await writer.drain()
        if await reader.read(1) == b"":  # the client closed: a real engine aborts the generation
            seen_eof.set()

    async def run() -> None:
        async with _server(endless) as (base, _connections):
            pool = _pool(base)
            response = await pool.request("POST", "/v1/x", b"{}", b"")
            assert await response.next_chunk() == b"data: {}\n\n"
            response.abort("client disconnected")
            with pytest.raises(UpstreamError, match="client disconnected"):
                await response.next_chunk()
            await response.aclose()
            await asyncio.wait_for(seen_eof.wait(), 5)
            await pool.aclose()

    asyncio.run(run())


def test_base_url_path_is_a_prefix() -> None:
    async def echo_path(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head, _body = await _read_request(reader)
        target = head.split(b" ")[1]
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(target), target))
        await writer.drain()

    async def run() -> None:
        async with _server(echo_path) as (base, _connections):
            pool = _pool(base + "/pool-a/")
            response = await pool.request("GET", "/v1/models", b"", b"")
            assert await response.aread() == b"/pool-a/v1/models"
            await response.aclose()
            await pool.aclose()

    asyncio.run(run())


USAGE_EVENT = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}\n\n'
TOKEN_EVENT = b'data: {"id":"c","choices":[{"delta":{"content":"\\"usage\\":{"}}]}\n\n'
DONE = b"data: [DONE]\n\n"


RUNNING_EVENT = b'data: {"id":"c","choices":[{"text":"a"}],"usage":{"prompt_tokens":3,"completion_tokens":1}}\n\n'


class TestUsageTap:
    def test_token_events_pass_unchanged(self) -> None:
        tap = UsageTap(strip=True)
        # Content that *talks about* usage is JSON-escaped: it never looks like the usage key.
        assert tap(TOKEN_EVENT) == TOKEN_EVENT
        assert tap.usage is None

    @pytest.mark.parametrize("strip", [True, False])
    def test_usage_event_counted_and_stripped_on_request(self, strip: bool) -> None:
        tap = UsageTap(strip=strip)
        out = tap(TOKEN_EVENT + USAGE_EVENT + DONE)
        assert tap.usage == {"prompt_tokens": 3, "completion_tokens": 5}
        assert out == (TOKEN_EVENT + DONE if strip else TOKEN_EVENT + USAGE_EVENT + DONE)

    def test_marker_split_across_pieces(self) -> None:
        tap = UsageTap(strip=True)
        stream = TOKEN_EVENT + USAGE_EVENT + DONE
        split = len(TOKEN_EVENT) + USAGE_EVENT.index(b'"usage"') + 4
        out = tap(stream[:split]) + tap(stream[split:]) + tap.flush()
        assert out == TOKEN_EVENT + DONE
        assert tap.usage == {"prompt_tokens": 3, "completion_tokens": 5}

    def test_running_counts_are_not_the_total(self) -> None:
        """continuous_usage_stats: every event carries a running count; only the total counts,
        and the running events reach the client unchanged."""
        tap = UsageTap(strip=True)
        assert tap(RUNNING_EVENT * 3) == RUNNING_EVENT * 3
        assert tap.usage == {"prompt_tokens": 3, "completion_tokens": 1}  # before the total: the last count
        assert not tap.has_total
        assert tap(USAGE_EVENT + DONE) == DONE
        assert tap.usage == {"prompt_tokens": 3, "completion_tokens": 5}
        assert tap.has_total

    def test_unterminated_tail_is_flushed_unchanged(self) -> None:
        tap = UsageTap(strip=True)
        assert tap(TOKEN_EVENT + b"data: {partial") == TOKEN_EVENT
        assert tap.flush() == b"data: {partial"


def test_usage_in_a_complete_body() -> None:
    body = json.dumps({"choices": [{"text": '"usage":{'}], "usage": {"prompt_tokens": 2, "completion_tokens": 4}})
    assert usage_in(body.encode()) == {"prompt_tokens": 2, "completion_tokens": 4}
    assert usage_in(b'{"choices":[]}') is None
    assert usage_in(b'{"usage":{broken') is None


def test_exhausted_pool_times_out() -> None:
    async def run() -> None:
        async with _server(_stream_events) as (base, _connections):
            pool = UpstreamPool(base, connect_timeout_s=0.2, read_timeout_s=5, max_connections=1)
            first = await pool.request("POST", "/v1/x", b"{}", b"")
            with pytest.raises(UpstreamTimeoutError, match="pool exhausted") as exhausted:
                await pool.request("POST", "/v1/x", b"{}", b"")
            assert not exhausted.value.request_sent
            await first.aread()
            await first.aclose()
            second = await pool.request("POST", "/v1/x", b"{}", b"")  # the slot came back
            await second.aread()
            await second.aclose()
            await pool.aclose()

    asyncio.run(run())
