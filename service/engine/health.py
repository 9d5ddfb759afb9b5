"""Engine health as the load balancers see it: the phase behind `/health/live` and `/health/ready`
(docs/service.md, "Health contract")."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum


class EnginePhase(StrEnum):
    STARTING = "starting"  # process spawned (or attaching), waiting for the engine's /health
    WARMING = "warming"  # engine up, warm-up generation running
    READY = "ready"  # warm-up done and the last 1-token probe succeeded
    PROBE_FAILING = "probe_failing"  # alive, but the last probe failed or timed out
    HUNG = "hung"  # no successful probe for longer than the hang threshold
    DEAD = "dead"  # the engine process exited
    RESTARTING = "restarting"  # waiting out the restart backoff
    FAILED = "failed"  # restart limit reached; the service exits non-zero
    STOPPED = "stopped"  # stopped on purpose (drain / shutdown)


_NOT_LIVE = frozenset({EnginePhase.HUNG, EnginePhase.DEAD, EnginePhase.RESTARTING, EnginePhase.FAILED})


@dataclass
class EngineHealth:
    """Mutable engine state, written by the supervisor and read by the health routes."""

    phase: EnginePhase = EnginePhase.STARTING
    reason: str = "engine starting"
    restarts: int = 0
    last_probe_ok: float | None = None
    last_probe_latency_s: float | None = None
    since: float = field(default_factory=time.monotonic)

    def set(self, phase: EnginePhase, reason: str) -> None:
        if phase is not self.phase:
            self.since = time.monotonic()
        self.phase = phase
        self.reason = reason

    @property
    def live(self) -> bool:
        return self.phase not in _NOT_LIVE

    @property
    def ready(self) -> bool:
        return self.phase is EnginePhase.READY
