"""The drain state machine shared by SIGTERM and the cloud preemption watchers.

SERVING -> DRAINING (readiness 503, still serving while the load balancer deregisters us)
-> REJECTING (new requests 503 + Retry-After; in-flight requests and streams finish)
-> STOPPED (the server stops, the engine stops, the process exits 0).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger("service.drain")


class DrainPhase(StrEnum):
    SERVING = "serving"
    DRAINING = "draining"
    REJECTING = "rejecting"
    STOPPED = "stopped"


@dataclass(frozen=True)
class DrainBudget:
    serve_s: float
    finish_s: float


class DrainController:
    """Runs one drain; a later trigger with a tighter budget shortens the remaining windows."""

    def __init__(self, in_flight: Callable[[], int], on_done: Callable[[], None]) -> None:
        self._in_flight = in_flight
        self._on_done = on_done
        self.phase = DrainPhase.SERVING
        self.reason: str | None = None
        # The gateway's own accounting, for operators (and the drain tests): what was in flight
        # when the drain began and when new requests started to be turned away.
        self.in_flight_at_start: int | None = None
        self.in_flight_at_reject: int | None = None
        self._serve_until = 0.0
        self._finish_until = 0.0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def draining(self) -> bool:
        return self.phase is not DrainPhase.SERVING

    @property
    def rejecting(self) -> bool:
        return self.phase in (DrainPhase.REJECTING, DrainPhase.STOPPED)

    def begin(self, reason: str, budget: DrainBudget) -> None:
        now = time.monotonic()
        serve_until = now + budget.serve_s
        finish_until = serve_until + budget.finish_s
        if self._task is None:
            self.phase = DrainPhase.DRAINING
            self.reason = reason
            self.in_flight_at_start = self._in_flight()
            self._serve_until, self._finish_until = serve_until, finish_until
            log.warning(
                "drain started",
                extra={
                    "reason": reason,
                    "serve_s": budget.serve_s,
                    "finish_s": budget.finish_s,
                    "in_flight": self.in_flight_at_start,
                },
            )
            self._task = asyncio.get_running_loop().create_task(self._run(), name="drain")
            return
        if finish_until < self._finish_until or serve_until < self._serve_until:
            self._serve_until = min(self._serve_until, serve_until)
            self._finish_until = min(self._finish_until, finish_until)
            log.warning("drain budget tightened", extra={"reason": reason})
            self._changed.set()

    async def _run(self) -> None:
        while time.monotonic() < self._serve_until:
            await self._wait_change(self._serve_until - time.monotonic())
        self.phase = DrainPhase.REJECTING
        self.in_flight_at_reject = self._in_flight()
        log.warning("drain: rejecting new requests", extra={"in_flight": self.in_flight_at_reject})
        while time.monotonic() < self._finish_until and self._in_flight() > 0:
            await self._wait_change(min(self._finish_until - time.monotonic(), 0.05))
        left = self._in_flight()
        if left:
            log.error("drain: finish window over with requests in flight", extra={"in_flight": left})
        self.phase = DrainPhase.STOPPED
        log.warning("drain finished", extra={"reason": self.reason})
        self._on_done()

    async def _wait_change(self, timeout: float) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout=max(timeout, 0.0))

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
