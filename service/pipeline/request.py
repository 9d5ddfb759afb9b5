"""What the pipeline passes along: one validated request, and how its engine call can end."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response
from starlette.types import Receive

from service.api.errors import ApiError
from service.api.protocol import Endpoint
from service.pipeline.auth import ANONYMOUS_KEY
from service.upstream.client import EngineClient
from service.upstream.relay import StreamEnd


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


# The engine call the feature chain makes: the engine (a pool's client) and the request.
Forward = Callable[[EngineClient, PreparedRequest], Awaitable[Response]]
