"""The fleet file's schema: frozen, typed models of `regions.yaml`.

Structural rules (keys, types, ranges, patterns) live here, on the fields; rules that need the
whole fleet (a region of another cloud, a GPU the cloud does not sell, min > max, ...) are in
`infra.config.validation`; reading a file is `infra.config.loading`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contract.facts import SERVICE_PORT
from contract.instance import PoolRoute, RoutingContract
from infra.catalog import COLD_START_BUDGETS, GPU_OFFERINGS, REGIONS, Cloud, GpuOffering, RegionInfo
from infra.naming import BOOTSTRAP_STACK, GLOBAL_STACK, region_stack_name

# Known pre-quantized builds, so a fleet file can name the base model only.
QUANTIZED_CHECKPOINTS: dict[tuple[str, str], str] = {
    ("Qwen/Qwen2.5-7B-Instruct", "int8"): "RedHatAI/Qwen2.5-7B-Instruct-quantized.w8a8",
    ("Qwen/Qwen2.5-7B-Instruct", "fp8"): "RedHatAI/Qwen2.5-7B-Instruct-FP8-dynamic",
}

_NAME = r"^[a-z][a-z0-9-]{0,28}[a-z0-9]$"
_Mirror = Annotated[str, Field(pattern=r"^(s3|gs)://[a-z0-9][a-z0-9.\-_]*(/.*)?$")]
# The object store each cloud's instances read a weights mirror from.
MIRROR_SCHEME = {Cloud.AWS: "s3://", Cloud.GCP: "gs://"}
_SECRET_NAME = r"^[A-Za-z0-9/_+=.@-]+$"  # noqa: S105 - a name pattern, not a secret


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Quantization(StrEnum):
    INT8 = "int8"
    FP8 = "fp8"
    NONE = "none"


class ModelSpec(_Frozen):
    """What every instance serves."""

    id: str = Field(default="Qwen/Qwen2.5-7B-Instruct", min_length=1)
    served_name: str = Field(default="qwen2.5-7b-instruct", pattern=r"^[A-Za-z0-9._/-]+$")
    quantization: Quantization = Quantization.INT8
    # The repository the engine loads. Empty: a known quantized build of `id`, else `id`.
    checkpoint: str | None = None
    # Context length given to the engine; empty: the model's own (its config.json).
    max_model_len: int | None = Field(default=None, ge=256, le=131072)
    gpu_memory_utilization: float = Field(default=0.90, gt=0.1, le=0.98)
    # Object-store mirror of the weights: s3://... (AWS regions) or gs://... (GCP regions), or
    # one per cloud ({aws: s3://..., gcp: gs://...}); empty (or a cloud left out): the model hub.
    weights_mirror: _Mirror | dict[Literal["aws", "gcp"], _Mirror] | None = None

    def mirror(self, cloud: Cloud) -> str | None:
        """The weights mirror the instances of `cloud` read (None: the model hub)."""
        if isinstance(self.weights_mirror, dict):
            return self.weights_mirror.get(cloud.value)
        if self.weights_mirror and self.weights_mirror.startswith(MIRROR_SCHEME[cloud]):
            return self.weights_mirror
        return None

    @property
    def engine_checkpoint(self) -> str:
        if self.checkpoint:
            return self.checkpoint
        return QUANTIZED_CHECKPOINTS.get((self.id, self.quantization.value), self.id)


# The routing section is the instance contract's own: what the fleet file says about routing is
# what the gateway reads, field for field.
PoolSpec = PoolRoute
RoutingSpec = RoutingContract


class ServiceSpec(_Frozen):
    """Settings handed to the service container on every instance."""

    # What .github/workflows/image.yml pushes: ghcr.io/<github.repository>/service:<version>.
    image: str = Field(default="ghcr.io/llm-fleet/llm-fleet/service:0.1.0", min_length=1, pattern=r"^[^\s'\"]+$")
    port: int = Field(default=SERVICE_PORT, ge=1024, le=65535)
    max_tokens_cap: int = Field(default=1024, ge=1, le=32768)
    rate_limit_rpm: int = Field(default=100, ge=1)
    rate_limit_tpm: int = Field(default=200_000, ge=1)
    cache_ttl_s: int = Field(default=600, ge=0)
    # Secrets Manager (AWS) / Secret Manager (GCP) secret holding the API keys, one per line.
    api_keys_secret: str = Field(default="llm-fleet-api-keys", pattern=_SECRET_NAME)
    # Secret holding "username:token" for the image's registry; empty: the registry needs no
    # login (a public image), or it is the cloud's own (ECR, Artifact Registry: the instance's role).
    registry_secret: str | None = Field(default=None, pattern=_SECRET_NAME)
    # Secret holding a Hugging Face token (gated models, hub rate limits); empty: none.
    hf_token_secret: str | None = Field(default=None, pattern=_SECRET_NAME)
    # Add a system instruction to answer in the language the user wrote in.
    language_instruction: bool = False

    @property
    def optional_secrets(self) -> dict[str, str]:
        """The secrets the instances read besides the API keys, by purpose (CamelCase)."""
        named = {"HfToken": self.hf_token_secret, "RegistryCredentials": self.registry_secret}
        return {purpose: name for purpose, name in named.items() if name}

    # Seconds from a cold boot to ready (image pull + weights + engine + warm-up); sizes the
    # ASG health-check grace period and the MIG autohealing initial delay. Empty: the written
    # budget of the region's GPU type (catalog.COLD_START_BUDGETS; Fleet.cold_start_s).
    cold_start_s: int | None = Field(default=None, ge=60, le=3600)


class GlobalMode(StrEnum):
    LATENCY_DNS = "latency-dns"
    GLOBAL_ACCELERATOR = "global-accelerator"


class GlobalSpec(_Frozen):
    domain: str = Field(pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$")
    hosted_zone: str = Field(pattern=r"^([a-z0-9-]+\.)+[a-z]{2,}$")
    mode: GlobalMode = GlobalMode.LATENCY_DNS
    health_check_interval_s: Literal[10, 30] = 10
    health_check_failure_threshold: int = Field(default=3, ge=1, le=10)


class AutoscaleSpec(_Frozen):
    metric: Literal["requests_in_flight_per_instance", "gpu_utilization", "cpu_utilization"] = (
        "requests_in_flight_per_instance"
    )
    target: float = Field(default=8, gt=0)
    scale_in_cooldown_s: int = Field(default=300, ge=0)


class StateSpec(_Frozen):
    """Where Terraform keeps state: the bootstrap stack creates the bucket."""

    backend: Literal["s3", "local"] = "s3"
    bucket: str = Field(default="llm-fleet-tfstate", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    region: str = "us-east-1"


class GcpSpec(_Frozen):
    project: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")


class GithubSpec(_Frozen):
    """The repository whose workflows may assume the deploy roles (OIDC subject)."""

    repository: str = Field(default="llm-fleet/llm-fleet", pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
    # An account holds one IAM OIDC provider per URL: `existing` reuses the account's
    # token.actions.githubusercontent.com provider instead of creating it (EntityAlreadyExists).
    oidc_provider: Literal["create", "existing"] = "create"


class RegionSpec(_Frozen):
    cloud: Cloud
    region: str
    gpu_type: str
    min_replicas: int = Field(ge=0)
    max_replicas: int = Field(ge=1)
    # Replicas that are never spot: reserved / on-demand. Everything above is spot.
    on_demand_base: int = Field(default=0, ge=0)
    # AWS: capacity reservation ids (cr-...); GCP: reservation names. Used by the base.
    capacity_reservations: tuple[str, ...] = ()
    canary: bool = False

    @property
    def stack_name(self) -> str:
        return region_stack_name(self.cloud, self.region)

    @property
    def offering(self) -> GpuOffering:
        return GPU_OFFERINGS[self.cloud][self.gpu_type]

    @property
    def info(self) -> RegionInfo:
        return REGIONS[self.cloud][self.region]

    @property
    def spot_max(self) -> int:
        return max(self.max_replicas - self.on_demand_base, 0)


class Fleet(_Frozen):
    project: str = Field(default="llm-fleet", pattern=_NAME)
    model: ModelSpec = ModelSpec()
    service: ServiceSpec = ServiceSpec()
    routing: RoutingSpec = RoutingSpec()
    global_: GlobalSpec = Field(alias="global")
    autoscale: AutoscaleSpec = AutoscaleSpec()
    state: StateSpec = StateSpec()
    gcp: GcpSpec = GcpSpec()
    github: GithubSpec = GithubSpec()
    tags: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:/=+@ -]{1,63}$")], str] = {}
    regions: tuple[RegionSpec, ...] = Field(min_length=1)

    def regions_of(self, cloud: Cloud) -> tuple[RegionSpec, ...]:
        return tuple(r for r in self.regions if r.cloud == cloud)

    def region(self, stack_name: str) -> RegionSpec:
        for r in self.regions:
            if r.stack_name == stack_name:
                return r
        raise KeyError(stack_name)

    def cold_start_s(self, region: RegionSpec) -> int:
        """Launch to ready for one region: `service.cold_start_s`, else its GPU's budget."""
        if self.service.cold_start_s is not None:
            return self.service.cold_start_s
        return COLD_START_BUDGETS[region.cloud][region.gpu_type].cold_start_s

    @property
    def canary(self) -> RegionSpec:
        return next((r for r in self.regions if r.canary), self.regions[0])

    def stack_names(self) -> list[str]:
        """Every stack, in deploy order: state bucket, regions (canary first), global."""
        regional = [self.canary] + [r for r in self.regions if r is not self.canary]
        return [BOOTSTRAP_STACK, *(r.stack_name for r in regional), GLOBAL_STACK]
