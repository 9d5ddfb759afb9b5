"""GCP instance scripts: the shared boot script plus the GCP metrics publisher, and the drain.

startup-script: `infra.boot.render_boot_script` (shared with AWS) followed by
`templates/gcp_metrics.sh`, which publishes the per-instance custom metrics the MIG
autoscalers track. shutdown-script: stops the service unit, whose `docker stop` sends
SIGTERM, so the gateway drains (readiness 503 at once, in-flight requests finish) inside the
~30 s GCP gives a preempted spot VM; the gateway also watches the metadata server's
preemption flag and starts draining on its own.
"""

from __future__ import annotations

import shlex
from importlib import resources

from infra.boot import DRAIN_BUDGET_S, render_boot_script
from infra.catalog import Cloud
from infra.config import Fleet, RegionSpec

METRIC_PREFIX = "custom.googleapis.com/llm_fleet"
IN_FLIGHT_METRIC_TYPE = f"{METRIC_PREFIX}/requests_in_flight"
GPU_METRIC_TYPE = f"{METRIC_PREFIX}/gpu_utilization"
METRICS_PERIOD_S = 15
# The shutdown script must be done before GCP powers a preempted VM off (DRAIN_BUDGET_S).
SHUTDOWN_MARGIN_S = 2


def startup_script(fleet: Fleet, region: RegionSpec) -> str:
    settings = {
        "IN_FLIGHT_METRIC_TYPE": IN_FLIGHT_METRIC_TYPE,
        "GPU_METRIC_TYPE": GPU_METRIC_TYPE,
        "METRICS_PERIOD_S": str(METRICS_PERIOD_S),
    }
    extra = "\n".join(f"readonly {k}={shlex.quote(v)}" for k, v in settings.items())
    body = resources.files("infra").joinpath("templates/gcp_metrics.sh").read_text(encoding="utf-8")
    return f"{render_boot_script(fleet, region)}\n{extra}\n{body}"


def shutdown_script() -> str:
    budget = DRAIN_BUDGET_S[Cloud.GCP] - SHUTDOWN_MARGIN_S
    return (
        "#!/bin/bash\n"
        "# llm-fleet shutdown script (infra/gcp_boot.py): drain the service before the VM goes.\n"
        "# Stopping the unit sends SIGTERM: readiness turns 503 at once, the load balancer stops\n"
        "# sending, in-flight requests and streams finish, the engine stops.\n"
        f"timeout {budget} systemctl stop llm-fleet.service || true\n"
    )
