"""Everything one running gateway holds, hung on `app.state.service`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.config.settings import ServiceSettings
from service.engine.supervisor import EngineSupervisor
from service.lifecycle.drain import DrainBudget, DrainController
from service.lifecycle.inflight import InFlight
from service.observability.metrics import GatewayMetrics

log = logging.getLogger("service")


@dataclass
class ServiceState:
    settings: ServiceSettings
    engine: EngineSupervisor
    drain: DrainController
    metrics: GatewayMetrics
    in_flight: InFlight
    exit_code: int = 0
    exit_reason: str | None = None  # why a failing exit happened (printed as the last line)
    # Set by the server runner: stop accepting, finish, run the lifespan shutdown.
    stop_server: Callable[[], None] = field(default=lambda: None)

    @property
    def ready(self) -> bool:
        return self.engine.health.ready and not self.drain.draining

    def request_exit(self, code: int, reason: str) -> None:
        log.warning("service exiting", extra={"exit_code": code, "reason": reason})
        if code > self.exit_code:
            self.exit_code, self.exit_reason = code, reason
        self.stop_server()

    def begin_drain(self, reason: str, *, gcp: bool = False) -> None:
        s = self.settings
        budget = (
            DrainBudget(s.gcp_drain_serve_s, s.gcp_drain_finish_s)
            if gcp
            else DrainBudget(s.drain_serve_s, s.drain_finish_s)
        )
        self.drain.begin(reason, budget)

    def describe(self) -> dict[str, Any]:
        health = self.engine.health
        reason = f"draining ({self.drain.reason})" if self.drain.draining else health.reason
        return {
            "status": "ready" if self.ready else ("draining" if self.drain.draining else health.phase.value),
            "ready": self.ready,
            "live": health.live,
            "reason": reason,
            "engine": health.phase.value,
            "drain": self.drain.phase.value,
            "drain_in_flight": {"at_start": self.drain.in_flight_at_start, "at_reject": self.drain.in_flight_at_reject},
            "restarts": health.restarts,
            "in_flight": self.in_flight.count,
            "model": self.settings.served_model_name,
        }
