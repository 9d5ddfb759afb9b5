"""Per-request deadline with a cached fallback.

    deadline = request_deadline(headers, settings.fallback)      # 400 on a bad header
    outcome = await run_with_fallback(engine_call(), deadline_s=deadline, cache=cache, key=policy.key)
    # outcome.fallback -> serve outcome.cached.body with `x-cache: fallback`
    # RequestTimeoutError   -> 504 with `error.code = "timeout"`

For streams, wrap the wait for the first chunk: once bytes flow, the request is no
longer cancellable without breaking the client's stream.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from service.config.features import FallbackSettings
from service.pipeline.cache import CachedResponse, ResponseCache

T = TypeVar("T")


class InvalidTimeoutHeaderError(ValueError):
    """The deadline header is not a positive number of seconds (the gateway answers 400)."""

    def __init__(self, header: str, value: str, settings: FallbackSettings) -> None:
        self.header = header
        self.value = value
        super().__init__(
            f"{header}: must be a number of seconds between {settings.min_timeout_s:g} and "
            f"{settings.max_timeout_s:g}, got {value!r}"
        )


class RequestTimeoutError(TimeoutError):
    """The deadline passed and no cached answer exists (the gateway answers 504)."""

    code = "timeout"

    def __init__(self, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        super().__init__(
            f"the model did not answer within {deadline_s:g} s and no cached answer exists; "
            "retry later or raise the deadline with the x-request-timeout header"
        )


def request_deadline(headers: Mapping[str, str], settings: FallbackSettings) -> float:
    """Seconds this request may take: the header if present (clamped to
    [min_timeout_s, max_timeout_s]), else the configured default."""
    raw = next((v for k, v in headers.items() if k.lower() == settings.header), None)
    if raw is None or not raw.strip():
        return settings.default_timeout_s
    try:
        value = float(raw.strip())
    except ValueError:
        raise InvalidTimeoutHeaderError(settings.header, raw, settings) from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidTimeoutHeaderError(settings.header, raw, settings)
    return min(max(value, settings.min_timeout_s), settings.max_timeout_s)


@dataclass(frozen=True, slots=True)
class Outcome(Generic[T]):
    """Either the fresh result, or (fallback=True) the cached answer."""

    value: T | None
    cached: CachedResponse | None = None

    @property
    def fallback(self) -> bool:
        return self.cached is not None


async def run_with_fallback(
    work: Awaitable[T],
    *,
    deadline_s: float,
    cache: ResponseCache | None = None,
    key: str | None = None,
) -> Outcome[T]:
    """Await `work` for at most `deadline_s`; on timeout cancel it and fall back to the
    cached answer for `key`, or raise `RequestTimeoutError`."""
    deadline = asyncio.timeout(deadline_s)
    try:
        async with deadline:
            value = await work
    except TimeoutError:
        if not deadline.expired():
            raise  # the work's own TimeoutError, not our deadline
        cached = await cache.get(key) if cache is not None and key is not None else None
        if cached is None:
            raise RequestTimeoutError(deadline_s) from None
        return Outcome(value=None, cached=cached)
    return Outcome(value=value)
