"""Pure-ASGI responses for engine answers: the engine's bytes go through unchanged.

`StreamRelay` sends each piece the engine delivered with one `send` call: no per-event JSON,
no task group, no generator layers. Per piece it does two cheap byte checks (does the piece end
on an SSE event boundary; does it hold the `"usage":` key). Only events that carry a usage
object are parsed: the total (the last before `[DONE]`) is counted once, when the stream ends,
for the token metrics and the rate limiter, and dropped when the gateway asked for it on the
client's behalf. A watcher on `receive` aborts the engine request when the client goes away,
so the engine stops generating for nobody; a time limit aborts it the same way.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from service.api.errors import error_envelope
from service.upstream.pool import UpstreamError, UpstreamResponse, UpstreamTimeLimitError

log = logging.getLogger("service.relay")

_USAGE_KEY = b'"usage":'
_EVENT_END = b"\n\n"
_DECODER = json.JSONDecoder()

TIME_LIMIT_CODE = "engine_time_limit"  # error.code of a request stopped at --engine-time-limit-s


def usage_in(data: bytes) -> dict[str, Any] | None:
    """The last `"usage": {...}` object in an engine body, parsed on its own (not the whole body).

    Content strings are JSON-escaped (`\\"usage\\":`), so only the real key matches."""
    at = data.rfind(_USAGE_KEY)
    if at < 0:
        return None
    try:
        value, _end = _DECODER.raw_decode(data[at + len(_USAGE_KEY) :].decode().lstrip())
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class UsageTap:
    """Finds the usage events in an SSE byte stream without parsing the other events.

    The engine's request total is the usage-only event (no choices) before `[DONE]`; with
    `stream_options.continuous_usage_stats` every other event carries a running count too,
    so the tap keeps the last of each kind (`usage`) instead of adding them up. The total is
    dropped when the gateway asked for it on the client's behalf (`strip`).

    A piece that ends inside an event keeps its incomplete tail back until the rest arrives, so
    the marker is never missed across a split (the engine writes whole events; this is rare).
    """

    def __init__(self, *, strip: bool) -> None:
        self._strip = strip
        self._pending = b""
        self._total: dict[str, Any] | None = None
        self._running: dict[str, Any] | None = None

    @property
    def usage(self) -> dict[str, Any] | None:
        """The request's usage: the engine's total, else the last running count seen."""
        return self._total if self._total is not None else self._running

    @property
    def has_total(self) -> bool:
        return self._total is not None

    def __call__(self, piece: bytes) -> bytes:
        if self._pending:
            piece, self._pending = self._pending + piece, b""
        if not piece.endswith(_EVENT_END):
            cut = piece.rfind(_EVENT_END)
            if cut < 0:
                self._pending = piece
                return b""
            piece, self._pending = piece[: cut + 2], piece[cut + 2 :]
        if _USAGE_KEY not in piece:
            return piece
        return self._take(piece)

    def flush(self) -> bytes:
        """Whatever is left at the end of the stream (an unterminated last event), unchanged."""
        rest, self._pending = self._pending, b""
        return rest

    def _take(self, events: bytes) -> bytes:
        kept: list[bytes] = []
        for event in events[:-2].split(_EVENT_END):
            if _USAGE_KEY in event and event.startswith(b"data: {"):
                try:
                    data = json.loads(event[6:])
                except json.JSONDecodeError:
                    data = None
                usage = data.get("usage") if isinstance(data, dict) else None
                if isinstance(usage, dict):
                    assert isinstance(data, dict)
                    if data.get("choices") == []:  # the total, after the last choice event
                        self._total = usage
                        if self._strip:  # asked for on the client's behalf
                            continue
                    else:
                        self._running = usage
            kept.append(event + _EVENT_END)
        return b"".join(kept)


StreamEnd = Callable[[dict[str, Any] | None, bool], None]


class PassthroughResponse(Response):
    """A complete engine answer: its body bytes and headers as the engine sent them."""

    def __init__(self, body: bytes, status_code: int, raw_headers: list[tuple[bytes, bytes]]) -> None:
        super().__init__(status_code=status_code)
        self.body = body
        self.raw_headers = [*raw_headers, (b"content-length", b"%d" % len(body))]


class StreamRelay(Response):
    """A streamed engine answer relayed piece by piece; one ASGI `send` per piece.

    `on_end(usage, completed)` runs once when the relay stops: the engine's usage (None when
    none came) and whether the stream ran to its end (False: the client left, the engine
    failed, or the stream passed `deadline`, a loop time at which the engine request is
    aborted with an error event to the client)."""

    def __init__(
        self,
        upstream: UpstreamResponse,
        raw_headers: list[tuple[bytes, bytes]],
        *,
        tap: UsageTap,
        on_first_piece: Callable[[], None],
        on_end: StreamEnd,
        deadline: float | None = None,
    ) -> None:
        super().__init__(status_code=upstream.status_code)
        self.raw_headers = list(raw_headers)
        self._upstream = upstream
        self._tap = tap
        self._on_first_piece = on_first_piece
        self._on_end = on_end
        self._deadline = deadline
        self._client_left = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        upstream, tap = self._upstream, self._tap
        loop = asyncio.get_running_loop()
        completed = False
        timer = (
            loop.call_at(
                self._deadline,
                functools.partial(upstream.abort, "the engine time limit passed", error=UpstreamTimeLimitError),
            )
            if self._deadline is not None
            else None
        )
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            watcher = loop.create_task(self._watch_client(receive))
            try:
                piece = await upstream.next_chunk()
                self._on_first_piece()
                while piece:
                    piece = tap(piece)
                    if piece:
                        await send({"type": "http.response.body", "body": piece, "more_body": True})
                    piece = await upstream.next_chunk()
                piece = tap.flush()
                completed = True
            except UpstreamTimeLimitError as exc:
                log.warning("stream stopped at the engine time limit", extra={"error": str(exc)})
                error = error_envelope(504, "The request held the engine past its time limit.", code=TIME_LIMIT_CODE)
                piece = tap.flush() + b"data: " + json.dumps(error).encode() + _EVENT_END
            except UpstreamError as exc:
                # The status line is gone: tell the client in-band (the openai SDK raises on an error event).
                log.warning("engine stream broke", extra={"error": str(exc)})
                error = error_envelope(502, "The engine stream broke.", code="engine_unavailable")
                piece = tap.flush() + b"data: " + json.dumps(error).encode() + _EVENT_END
            finally:
                # Neither may touch the connection once it is back in the pool.
                if timer is not None:
                    timer.cancel()
                watcher.cancel()
                await upstream.aclose()
            await send({"type": "http.response.body", "body": piece, "more_body": False})
        finally:
            if timer is not None:
                timer.cancel()
            await upstream.aclose()  # when the response start failed; a no-op otherwise
            self._on_end(tap.usage, completed and not self._client_left)

    async def _watch_client(self, receive: Receive) -> None:
        """The request body is read already: the next message is the client's disconnect."""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._client_left = True
                self._upstream.abort("client disconnected")
                return
