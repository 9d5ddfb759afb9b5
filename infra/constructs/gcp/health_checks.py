"""Two regional HTTP health checks with different jobs.

- `ready` (load balancer): `/health/ready`, fast (5 s interval, 2 failures): a draining or
  warming instance leaves the backend set within ~10 s, well inside the 30 s spot notice.
- `live` (MIG autohealing): `/health/live`, slow (30 s interval, 5 failures), used with an
  initial delay of the fleet's cold start, so a VM still pulling weights, or one that is
  draining (live stays 200), is never recreated; only a dead or hung engine is.
"""

from __future__ import annotations

from cdktf_cdktf_provider_google.compute_region_health_check import (
    ComputeRegionHealthCheck,
    ComputeRegionHealthCheckHttpHealthCheck,
    ComputeRegionHealthCheckLogConfig,
)
from constructs import Construct

from contract.facts import GCP, HEALTH_LIVE_PATH, LbHealthCheck
from infra.tagging import gcp_name

READY_CHECK = GCP.ready_check  # the load balancer's check, as the drain windows assume it
AUTOHEALING_CHECK = LbHealthCheck(
    interval_s=30, timeout_s=10, healthy_threshold=1, unhealthy_threshold=5, path=HEALTH_LIVE_PATH
)


class GcpHealthChecks(Construct):
    def __init__(self, scope: Construct, id_: str, *, name: str, region: str, port: int) -> None:
        super().__init__(scope, id_)
        self._name, self._region, self._port = name, region, port
        self.ready = self._check(
            "ready", READY_CHECK, "Load balancer: serving traffic (engine warm, not draining)", log=False
        )
        self.live = self._check(
            "live", AUTOHEALING_CHECK, "MIG autohealing: gateway and engine alive (also while draining)", log=True
        )

    def _check(self, id_: str, check: LbHealthCheck, description: str, *, log: bool) -> ComputeRegionHealthCheck:
        return ComputeRegionHealthCheck(
            self,
            id_,
            name=gcp_name(self._name, id_),
            region=self._region,
            description=description,
            check_interval_sec=int(check.interval_s),
            timeout_sec=int(check.timeout_s),
            healthy_threshold=check.healthy_threshold,
            unhealthy_threshold=check.unhealthy_threshold,
            http_health_check=ComputeRegionHealthCheckHttpHealthCheck(port=self._port, request_path=check.path),
            log_config=ComputeRegionHealthCheckLogConfig(enable=log),
        )
