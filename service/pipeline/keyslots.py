"""Per-key in-flight slots: one API key may hold at most `limit` requests at a time.

Taken right after authentication, before the body is read, so a client that trickles slow
bodies (or opens many streams) can occupy at most its own share of the instance's
`--max-in-flight`; every other key keeps being served. Per instance, in memory: a slot is
a live connection on this instance, not something a region shares.
"""

from __future__ import annotations

from collections.abc import Callable

from service.api.errors import ApiError


class KeySlots:
    def __init__(self, limit: int, *, retry_after_s: int) -> None:
        self.limit = limit
        self._retry_after_s = retry_after_s
        self._held: dict[str, int] = {}

    def held(self, key: str) -> int:
        return self._held.get(key, 0)

    def acquire(self, key: str) -> Callable[[], None]:
        """Take one of `key`'s slots; returns the release (safe to call more than once).
        Raises a 429 ApiError when the key holds all of its slots."""
        held = self._held.get(key, 0)
        if held >= self.limit:
            raise ApiError(
                429,
                f"Too many requests in flight for this API key (limit {self.limit} on this instance).",
                code="overloaded",
                headers={"Retry-After": str(self._retry_after_s)},
            )
        self._held[key] = held + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            left = self._held.get(key, 0) - 1
            if left > 0:
                self._held[key] = left
            else:
                self._held.pop(key, None)

        return release
