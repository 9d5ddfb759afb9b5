"""Facts that more than one layer relies on, each defined once.

The stacks (`infra`), the boot script and its agents (`infra/templates`), the service
(`service`) and the local region (`devkit`) import these; `tests/unit/test_facts.py` asserts
the relations between them (a drain fits inside each cloud's notice, the gateway's keep-alive
outlasts every load balancer's idle timeout, the serve window outlasts the load balancer's
detection time).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# --- the gateway's public surface -------------------------------------------------------------

SERVICE_PORT = 8000  # the default; `service.port` in the fleet file sets it
HEALTH_LIVE_PATH = "/health/live"
HEALTH_READY_PATH = "/health/ready"
HEALTH_ALIAS_PATH = "/health"  # readiness, for checkers that only know one path
CHAT_COMPLETIONS_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MODELS_PATH = "/v1/models"
PUBLIC_API_PATHS = (CHAT_COMPLETIONS_PATH, COMPLETIONS_PATH, MODELS_PATH)
# What the regional load balancers forward to the instances; every other path (the engine's
# own routes, the gateway's metrics) ends at the load balancer with a 404.
LB_FORWARDED_PATHS = (*PUBLIC_API_PATHS, HEALTH_READY_PATH)
METRICS_PATH = "/metrics"
# The metrics port answers without credentials, so it binds to loopback on the instance: the
# instance's own agents (host networking) read it there, and nothing else can.
METRICS_PORT = 9100
METRICS_HOST = "127.0.0.1"
ENGINE_HOST = "127.0.0.1"  # the engine listens here only; the gateway is its one client

# --- the container and the instance -----------------------------------------------------------

CONTAINER_NAME = "llm-fleet"
CONTAINER_UID = 10001  # the image's runtime user (service/Dockerfile): owns the keys file and the cache
# Inside the container.
KEYS_FILE_IN_CONTAINER = "/run/secrets/api-keys"
WEIGHTS_IN_CONTAINER = "/models"  # the object-store mirror, read-only
MODEL_CACHE_IN_CONTAINER = "/models-cache"  # HF_HOME: hub downloads and the engine's caches
# On the instance (under LLM_FLEET_ROOT in the local region).
INSTANCE_HOME = "/opt/llm-fleet"  # settings, scripts, secrets
INSTANCE_LOG_DIR = "/var/log/llm-fleet"
# The AWS Deep Learning AMIs mount the instance-store NVMe here when the type has one.
DLAMI_NVME_MOUNT = "/opt/dlami/nvme"

# --- the autoscaling signal -------------------------------------------------------------------

IN_FLIGHT_GAUGE = "llm_gateway_requests_in_flight"  # the gateway's Prometheus gauge
AWS_METRICS_NAMESPACE = "LLMFleet"
AWS_IN_FLIGHT_METRIC = "RequestsInFlight"
AWS_GPU_UTILIZATION_METRIC = "GPUUtilization"
AWS_METRIC_DIMENSION = "AutoScalingGroupName"
GCP_METRIC_PREFIX = "custom.googleapis.com/llm_fleet"
GCP_IN_FLIGHT_METRIC_TYPE = f"{GCP_METRIC_PREFIX}/requests_in_flight"
GCP_GPU_METRIC_TYPE = f"{GCP_METRIC_PREFIX}/gpu_utilization"
METRICS_PERIOD_S = 10  # how often the instance agents publish
AWS_LIFECYCLE_HOOK = "drain"  # the ASG termination hook the instance completes once drained
# The AWS liveness agent reports the instance unhealthy (Auto Scaling replaces it) after this
# many failed /health/live checks in a row, one every METRICS_PERIOD_S.
LIVENESS_FAILURES = 6

# --- timing -----------------------------------------------------------------------------------


class Cloud(StrEnum):
    AWS = "aws"
    GCP = "gcp"


@dataclass(frozen=True)
class LbHealthCheck:
    """A load balancer's readiness check (`HEALTH_READY_PATH`)."""

    interval_s: float
    timeout_s: float
    healthy_threshold: int
    unhealthy_threshold: int
    path: str = HEALTH_READY_PATH

    @property
    def detect_down_s(self) -> float:
        """The longest an instance that stopped answering 200 stays in the rotation."""
        return self.interval_s * self.unhealthy_threshold


@dataclass(frozen=True)
class DrainWindows:
    """serve (readiness 503, still serving while the load balancer deregisters), then finish
    (new requests 503 + Retry-After, in-flight requests end), then the engine stops."""

    serve_s: float
    finish_s: float
    engine_stop_s: float

    @property
    def total_s(self) -> float:
        return self.serve_s + self.finish_s + self.engine_stop_s


@dataclass(frozen=True)
class CloudTiming:
    cloud: Cloud
    # What the cloud gives between "this instance goes" and power-off.
    shutdown_budget_s: int  # scale-in / deletion
    preemption_notice_s: int  # spot interruption / preemption
    drain: DrainWindows  # on SIGTERM: scale-in, deploys (and the AWS spot notice: it fits)
    preemption_drain: DrainWindows  # on the cloud's preemption notice
    ready_check: LbHealthCheck  # the regional load balancer's check
    lb_idle_timeout_s: int  # how long the load balancer keeps an idle backend connection
    margin_s: int  # slack kept free at the end of every budget


# AWS: the spot interruption notice comes 2 minutes ahead (EC2 User Guide, "Spot Instance
# interruption notices"); scale-in waits in Terminating:Wait for the lifecycle hook as long as
# the instance's drain needs (`lifecycle_heartbeat_s`). ALB target group check: 10 s interval, 5 s
# timeout, 2 healthy / 3 unhealthy; idle timeout as the stack sets it (ALB attribute
# idle_timeout.timeout_seconds, default 60, up to 4000).
AWS = CloudTiming(
    cloud=Cloud.AWS,
    shutdown_budget_s=120,
    preemption_notice_s=120,
    drain=DrainWindows(serve_s=35, finish_s=60, engine_stop_s=20),
    preemption_drain=DrainWindows(serve_s=35, finish_s=60, engine_stop_s=20),
    ready_check=LbHealthCheck(interval_s=10, timeout_s=5, healthy_threshold=2, unhealthy_threshold=3),
    lb_idle_timeout_s=300,
    margin_s=5,
)
# GCP: a preempted Spot VM gets 30 s before it is stopped ("Spot VMs": preemption process);
# a deleted on-demand VM runs its shutdown script for up to 90 s ("Run shutdown scripts",
# best effort). The regional external Application Load Balancer keeps backend connections
# for 600 s, a fixed value ("External Application Load Balancer request distribution": the
# backend keepalive timeout is fixed). Its readiness check: 5 s interval, 4 s timeout,
# 2 healthy / 2 unhealthy.
GCP = CloudTiming(
    cloud=Cloud.GCP,
    shutdown_budget_s=90,
    preemption_notice_s=30,
    drain=DrainWindows(serve_s=15, finish_s=55, engine_stop_s=3),
    preemption_drain=DrainWindows(serve_s=10, finish_s=15, engine_stop_s=3),
    ready_check=LbHealthCheck(interval_s=5, timeout_s=4, healthy_threshold=2, unhealthy_threshold=2),
    lb_idle_timeout_s=600,
    margin_s=2,
)
TIMING: dict[Cloud, CloudTiming] = {Cloud.AWS: AWS, Cloud.GCP: GCP}

# The gateway keeps idle client connections open longer than any load balancer in front of it
# keeps them, so the load balancer, never the gateway, closes an idle connection (a gateway
# closing first races the load balancer's next request on it: sporadic 502s).
GATEWAY_KEEPALIVE_S = 620
# `docker stop` waits this much longer than the SIGTERM drain before it sends SIGKILL.
STOP_TIMEOUT_MARGIN_S = 10


def stop_timeout_s(cloud: Cloud) -> int:
    """`docker stop --time`: the whole SIGTERM drain plus a margin."""
    return int(TIMING[cloud].drain.total_s) + STOP_TIMEOUT_MARGIN_S


# Auto Scaling keeps a scaled-in AWS instance in Terminating:Wait (the lifecycle hook's heartbeat)
# for the whole container stop plus this slack, in which the lifecycle agent sees the stop end
# and completes the hook (the instance then goes at once, before the heartbeat runs out).
LIFECYCLE_HEARTBEAT_MARGIN_S = 60


def lifecycle_heartbeat_s() -> int:
    return stop_timeout_s(Cloud.AWS) + LIFECYCLE_HEARTBEAT_MARGIN_S
