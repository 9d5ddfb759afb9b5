"""`InstanceContract`: everything one GPU instance needs from the fleet file.

`infra` builds one per region (and pool) from `regions.yaml` and renders it into the
instance's boot settings (`boot`) and the service container's environment (`service`,
`LLM_SERVICE_*`). The service reads that environment back as its settings:
`ServiceContract` names only fields the service's settings have, and
`tests/unit/test_instance_contract.py` round-trips every field of every region.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contract.facts import CONTAINER_NAME, METRICS_HOST, METRICS_PORT, SERVICE_PORT, Cloud

ENV_PREFIX = "LLM_SERVICE_"
NESTED_DELIMITER = "__"
POOL_NAME = r"^[a-z][a-z0-9-]{0,28}[a-z0-9]$"
Intent = Literal["general", "code", "math"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoolRoute(_Frozen):
    """A model pool the gateway routes to: its own engine (no url) or another endpoint."""

    name: str = Field(pattern=POOL_NAME)
    model: str = Field(min_length=1, description="served model name clients may ask for")
    intents: tuple[Intent, ...] = Field(min_length=1)
    url: str | None = Field(default=None, pattern=r"^https?://")


# --- the service's part: LLM_SERVICE_* ----------------------------------------------------------


class CacheContract(_Frozen):
    enabled: bool = True
    ttl_s: float = Field(default=600.0, gt=0)


class RateLimitContract(_Frozen):
    requests_per_minute: int = Field(default=100, ge=1)
    tokens_per_minute: int = Field(default=200_000, ge=1)


class RoutingContract(_Frozen):
    default_model: str = "auto"
    pools: tuple[PoolRoute, ...] = ()


class LanguageContract(_Frozen):
    instruction_enabled: bool = False


class FeaturesContract(_Frozen):
    cache: CacheContract = CacheContract()
    rate_limit: RateLimitContract = RateLimitContract()
    routing: RoutingContract = RoutingContract()
    language: LanguageContract = LanguageContract()


class ServiceContract(_Frozen):
    """The service container's settings. Every field is a field of the service's settings
    (`service.config.settings.ServiceSettings`) of the same name; None means the service's default."""

    # the model and the engine
    model: str = Field(min_length=1)
    served_model_name: str = Field(min_length=1)
    quantization: str | None = None
    max_model_len: int | None = Field(default=None, ge=16)  # None: the model's own context
    gpu_memory_utilization: float = Field(default=0.90, gt=0.05, le=0.99)
    device: Literal["gpu", "cpu"] = "gpu"
    engine_args: tuple[str, ...] = ()
    engine_env: dict[str, str] = Field(default_factory=dict)
    engine_stop_timeout_s: float = Field(gt=0)
    engine_start_timeout_s: float | None = None
    probe_interval_s: float | None = None
    probe_timeout_s: float | None = None
    restart_backoff_s: float | None = None
    # the gateway
    port: int = Field(default=SERVICE_PORT, ge=1, le=65535)
    metrics_port: int = Field(default=METRICS_PORT, ge=1, le=65535)
    metrics_host: str = METRICS_HOST
    keepalive_s: float = Field(gt=0)
    api_keys_file: str
    max_tokens_cap: int = Field(ge=1)
    log_level: Literal["debug", "info", "warning", "error"] | None = None
    # drain: SIGTERM windows and the GCP preemption windows; the watchers that trigger it
    drain_serve_s: float = Field(ge=0)
    drain_finish_s: float = Field(ge=0)
    gcp_drain_serve_s: float = Field(ge=0)
    gcp_drain_finish_s: float = Field(ge=0)
    watch_aws: bool = False
    watch_gcp: bool = False
    aws_poll_interval_s: float | None = None
    # region-wide state (cache and rate limits); None: per instance
    redis_url: str | None = Field(default=None, pattern=r"^(redis|rediss|unix)://")
    features: FeaturesContract = FeaturesContract()

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.metrics_port == self.port:
            raise ValueError("metrics_port: must differ from port")
        if any("," in arg for arg in self.engine_args):
            raise ValueError("engine_args: an argument may not contain a comma (the list is comma-separated)")
        return self

    def env(self) -> dict[str, str]:
        """The container's environment: `LLM_SERVICE_<FIELD>`, nested sections with `__`."""
        return dict(_flatten(self, ENV_PREFIX))


def _flatten(model: BaseModel, prefix: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        key = f"{prefix}{name.upper()}"
        if value is None:
            continue
        if isinstance(value, BaseModel):
            out += _flatten(value, key + NESTED_DELIMITER)
        elif isinstance(value, dict):
            out.append((key, json.dumps(value, separators=(",", ":"), sort_keys=True)))
        elif _holds_models(info.annotation):
            out.append((key, json.dumps([item.model_dump(mode="json") for item in value], separators=(",", ":"))))
        else:
            out.append((key, env_value(value)))
    return out


def _holds_models(annotation: Any) -> bool:
    """tuple[SomeModel, ...]: a JSON list in the environment (pydantic-settings parses it)."""
    return any(isinstance(arg, type) and issubclass(arg, BaseModel) for arg in getattr(annotation, "__args__", ()))


def env_value(value: Any) -> str:
    """One scalar or list-of-strings environment value as the service's settings parse it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)  # comma-separated (the service splits it)
    return str(value)


# --- the boot script's part -----------------------------------------------------------------------


class BootContract(_Frozen):
    """What the boot script and the instance's agents need."""

    cloud: Cloud
    region: str = Field(min_length=1)
    stack: str = Field(min_length=1)
    project: str = Field(min_length=1)
    pool: str = Field(default="default", pattern=POOL_NAME)
    image: str = Field(min_length=1, pattern=r"^[^\s'\"]+$")
    # Secret (AWS Secrets Manager / GCP Secret Manager) with "username:token" for the image's
    # registry; None: the registry needs no login, or the cloud's own (ECR, Artifact Registry).
    registry_secret: str | None = None
    api_keys_secret: str = Field(min_length=1)
    hf_token_secret: str | None = None
    weights_mirror: str | None = Field(default=None, pattern=r"^(s3|gs)://[^\n]+$")
    container_name: str = Field(default=CONTAINER_NAME, pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
    stop_timeout_s: int = Field(ge=1)
    cold_start_s: int = Field(ge=1)
    asg_name: str | None = None  # AWS: the region's Auto Scaling group (metrics dimension, hooks)
    log_group: str | None = None  # AWS: the CloudWatch Logs group of the region's instances
    # Where the container's logs go: the cloud's log service through docker's own driver
    # (awslogs / gcplogs, with a rotated local cache), or rotated files (json-file).
    log_driver: Literal["awslogs", "gcplogs", "json-file"] = "json-file"
    gcp_project: str | None = None

    @model_validator(mode="after")
    def _cloud_fields(self) -> Self:
        if self.weights_mirror and not self.weights_mirror.startswith("s3://" if self.cloud == Cloud.AWS else "gs://"):
            raise ValueError(f"weights_mirror: a {self.cloud.value} instance reads s3:// (aws) or gs:// (gcp) mirrors")
        if self.cloud == Cloud.GCP and not self.gcp_project:
            raise ValueError("gcp_project: required on gcp")
        if self.cloud == Cloud.AWS and not self.asg_name:
            raise ValueError("asg_name: required on aws")
        if self.log_driver == "awslogs" and (self.cloud != Cloud.AWS or not self.log_group):
            raise ValueError("log_driver: awslogs needs an aws instance and its log_group")
        if self.log_driver == "gcplogs" and self.cloud != Cloud.GCP:
            raise ValueError("log_driver: gcplogs is for gcp instances")
        return self


class InstanceContract(_Frozen):
    boot: BootContract
    service: ServiceContract

    @model_validator(mode="after")
    def _watcher_matches_cloud(self) -> Self:
        cloud = self.boot.cloud
        if self.service.watch_aws != (cloud == Cloud.AWS) or self.service.watch_gcp != (cloud == Cloud.GCP):
            raise ValueError(f"service.watch_{cloud.value}: an instance watches its own cloud's notices only")
        return self
