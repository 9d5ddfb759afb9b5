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

from contract.facts import GCP, HEALTH_LIVE_PATH
from infra.tagging import gcp_name

READY_CHECK = GCP.ready_check  # the load balancer's check, as the drain windows assume it


class GcpHealthChecks(Construct):
    def __init__(self, scope: Construct, id_: str, *, name: str, region: str, port: int) -> None:
        super().__init__(scope, id_)
        self.ready = ComputeRegionHealthCheck(
            self,
            "ready",
            name=gcp_name(name, "ready"),
            region=region,
            description="Load balancer: serving traffic (engine warm, not draining)",
            check_interval_sec=int(READY_CHECK.interval_s),
            timeout_sec=int(READY_CHECK.timeout_s),
            healthy_threshold=READY_CHECK.healthy_threshold,
            unhealthy_threshold=READY_CHECK.unhealthy_threshold,
            http_health_check=ComputeRegionHealthCheckHttpHealthCheck(port=port, request_path=READY_CHECK.path),
            log_config=ComputeRegionHealthCheckLogConfig(enable=False),
        )
        self.live = ComputeRegionHealthCheck(
            self,
            "live",
            name=gcp_name(name, "live"),
            region=region,
            description="MIG autohealing: gateway and engine alive (also while draining)",
            check_interval_sec=30,
            timeout_sec=10,
            healthy_threshold=1,
            unhealthy_threshold=5,
            http_health_check=ComputeRegionHealthCheckHttpHealthCheck(port=port, request_path=HEALTH_LIVE_PATH),
            log_config=ComputeRegionHealthCheckLogConfig(enable=True),
        )
