"""The fleet file: `regions.yaml` -> frozen, typed models.

`load_fleet(path)` is the one entry point. It either returns a `Fleet` or raises
`FleetConfigError` carrying one `FieldError` (field path + message) per mistake, so the
CLI can print one line each and exit 2. Structural mistakes (unknown keys, wrong types,
missing fields) come from pydantic; semantic ones (a region of another cloud, a GPU the
cloud does not sell, min > max, ...) from `_semantic_errors`, which sees the whole fleet.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infra.catalog import COLD_START_BUDGETS, GPU_OFFERINGS, GPUS, REGIONS, Cloud, GpuOffering, RegionInfo

DEFAULT_FLEET_FILE = Path(__file__).resolve().parent.parent / "regions.yaml"

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


class PoolSpec(_Frozen):
    """A model pool for intent routing: the local engine (no url) or a remote endpoint."""

    name: str = Field(pattern=_NAME)
    model: str = Field(min_length=1, description="served model name clients may ask for")
    intents: tuple[Literal["general", "code", "math"], ...] = Field(min_length=1)
    url: str | None = Field(default=None, pattern=r"^https?://")


class RoutingSpec(_Frozen):
    default_model: str = "auto"
    pools: tuple[PoolSpec, ...] = ()


class ServiceSpec(_Frozen):
    """Settings handed to the service container on every instance."""

    # What .github/workflows/image.yml pushes: ghcr.io/<github.repository>/service:<version>.
    image: str = Field(default="ghcr.io/llm-fleet/llm-fleet/service:0.1.0", min_length=1, pattern=r"^[^\s'\"]+$")
    port: int = Field(default=8000, ge=1024, le=65535)
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
        return f"{self.cloud.value}-{self.region}"

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
        return ["bootstrap", *(r.stack_name for r in regional), "global"]


# ---------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class FieldError:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class FleetConfigError(Exception):
    def __init__(self, source: str, errors: Sequence[FieldError]) -> None:
        self.source = source
        self.errors = list(errors)
        super().__init__("\n".join(f"{source}: {e}" for e in self.errors))


_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(loc: Iterable[str | int]) -> str:
    """('regions', 0, 'gpu_type') -> regions[0].gpu_type; odd keys are quoted: tags["a b"]."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{_quote(str(part))}]"
    return out


def _quote(key: str) -> str:
    """A key as a one-line, JSON-style quoted string (non-printable characters escaped)."""
    text = json.dumps(key, ensure_ascii=False)
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)


def _suggest(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _allowed(choices: Iterable[str]) -> str:
    return ", ".join(sorted(choices))


def _model_at(loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The pydantic model class found by walking `loc` from Fleet (for did-you-mean)."""
    current: Any = Fleet
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = next(
            (f for name, f in current.model_fields.items() if part in (name, f.alias)),
            None,
        )
        if field is None:
            return None
        current = _unwrap(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if args:
        for arg in args:
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                return arg
    return annotation


def _field_names(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _pydantic_errors(exc: ValidationError) -> list[FieldError]:
    errors: list[FieldError] = []
    raw = exc.errors(include_url=False)
    locs = [tuple(e["loc"]) for e in raw]
    for err in raw:
        loc = list(err["loc"])
        kind = err["type"]
        # pydantic drops invalid items and then also reports the list as too short: noise.
        if kind == "too_short" and any(o[: len(loc)] == tuple(loc) and len(o) > len(loc) for o in locs):
            continue
        given = err.get("input")
        if kind == "extra_forbidden":
            key = str(loc[-1])
            parent = _model_at(loc[:-1])
            names = _field_names(parent) if parent else []
            hint = _suggest(key, names)
            allowed = f"; allowed: {_allowed(names)}" if names else ""
            errors.append(FieldError(format_path(loc), f"unknown key{hint}{allowed}"))
        elif kind == "missing":
            errors.append(FieldError(format_path(loc), "required field is missing"))
        elif kind == "enum" and loc and loc[-1] == "cloud":
            errors.append(
                FieldError(format_path(loc), f"unknown cloud {given!r}; allowed: {_allowed(c.value for c in Cloud)}")
            )
        else:
            msg = err["msg"]
            if kind not in ("value_error",) and given is not None and not isinstance(given, dict | list):
                msg = f"{msg} (got {given!r})"
            errors.append(FieldError(format_path(loc), msg))
    return errors


def _semantic_errors(fleet: Fleet) -> list[FieldError]:
    errors: list[FieldError] = []
    seen: dict[tuple[Cloud, str], int] = {}
    canaries = [i for i, r in enumerate(fleet.regions) if r.canary]
    for i, r in enumerate(fleet.regions):
        p = f"regions[{i}]"
        regions = REGIONS[r.cloud]
        if r.region not in regions:
            other = [c.value for c, names in REGIONS.items() if c != r.cloud and r.region in names]
            where = f" ('{r.region}' is a {other[0]} region)" if other else _suggest(r.region, regions)
            errors.append(
                FieldError(
                    f"{p}.region",
                    f"'{r.region}' is not a {r.cloud.value} region{where}; allowed: {_allowed(regions)}",
                )
            )
        elif (r.cloud, r.region) in seen:
            errors.append(
                FieldError(f"{p}.region", f"duplicate region: already used by regions[{seen[(r.cloud, r.region)]}]")
            )
        else:
            seen[(r.cloud, r.region)] = i
        offered = GPU_OFFERINGS[r.cloud]
        if r.gpu_type not in GPUS:
            errors.append(
                FieldError(
                    f"{p}.gpu_type",
                    f"unknown gpu type '{r.gpu_type}'{_suggest(r.gpu_type, GPUS)}; allowed: {_allowed(GPUS)}",
                )
            )
        elif r.gpu_type not in offered:
            errors.append(
                FieldError(
                    f"{p}.gpu_type",
                    f"'{r.gpu_type}' is not offered on {r.cloud.value}; allowed: {_allowed(offered)}",
                )
            )
        else:
            gpu = GPUS[r.gpu_type]
            q = fleet.model.quantization
            if (q == Quantization.INT8 and not gpu.int8) or (q == Quantization.FP8 and not gpu.fp8):
                able = [g for g, s in GPUS.items() if (s.int8 if q == Quantization.INT8 else s.fp8) and g in offered]
                errors.append(
                    FieldError(
                        f"{p}.gpu_type",
                        f"'{r.gpu_type}' cannot run {q.value} models (model.quantization); "
                        f"{r.cloud.value} GPUs that can: {_allowed(able)}",
                    )
                )
        if r.min_replicas > r.max_replicas:
            errors.append(FieldError(f"{p}.min_replicas", f"{r.min_replicas} is above max_replicas ({r.max_replicas})"))
        if r.on_demand_base > r.max_replicas:
            errors.append(
                FieldError(f"{p}.on_demand_base", f"{r.on_demand_base} is above max_replicas ({r.max_replicas})")
            )
        if len(r.capacity_reservations) != len(set(r.capacity_reservations)):
            errors.append(FieldError(f"{p}.capacity_reservations", "lists the same reservation twice"))
        if r.cloud == Cloud.AWS:
            bad = [c for c in r.capacity_reservations if not re.fullmatch(r"cr-[0-9a-f]{8,17}", c)]
            if bad:
                errors.append(
                    FieldError(
                        f"{p}.capacity_reservations", f"{bad[0]!r} is not an AWS capacity reservation id (cr-...)"
                    )
                )
        if r.cloud == Cloud.GCP and fleet.gcp.project is None:
            errors.append(FieldError("gcp.project", f"required because {p} is a gcp region"))
    if len(canaries) > 1:
        errors.append(
            FieldError(
                f"regions[{canaries[1]}].canary", f"only one canary region allowed (regions[{canaries[0]}] is one)"
            )
        )
    g = fleet.global_
    if not (g.domain == g.hosted_zone or g.domain.endswith("." + g.hosted_zone)):
        errors.append(FieldError("global.domain", f"'{g.domain}' is not inside hosted_zone '{g.hosted_zone}'"))
    if g.mode == GlobalMode.GLOBAL_ACCELERATOR and fleet.regions_of(Cloud.GCP):
        errors.append(
            FieldError("global.mode", "global-accelerator works for AWS-only fleets; use latency-dns with gcp regions")
        )
    errors += _mirror_errors(fleet)
    names = [p.name for p in fleet.routing.pools]
    for i, pool in enumerate(fleet.routing.pools):
        if names.index(pool.name) != i:
            errors.append(FieldError(f"routing.pools[{i}].name", f"duplicate pool name '{pool.name}'"))
    local = [i for i, pool in enumerate(fleet.routing.pools) if pool.url is None]
    if len(local) > 1:
        errors.append(FieldError(f"routing.pools[{local[1]}].url", "only one pool can be the local engine (no url)"))
    return errors


def _mirror_errors(fleet: Fleet) -> list[FieldError]:
    mirror = fleet.model.weights_mirror
    if isinstance(mirror, dict):
        return [
            FieldError(f"model.weights_mirror.{cloud}", f"'{url}' is not a {MIRROR_SCHEME[Cloud(cloud)]} url")
            for cloud, url in mirror.items()
            if not url.startswith(MIRROR_SCHEME[Cloud(cloud)])
        ]
    if mirror:
        other = next((r for r in fleet.regions if not mirror.startswith(MIRROR_SCHEME[r.cloud])), None)
        if other is not None:
            return [
                FieldError(
                    "model.weights_mirror",
                    f"'{mirror}' cannot serve {other.stack_name} ({other.cloud.value} reads "
                    f"{MIRROR_SCHEME[other.cloud]}); give one per cloud: {{aws: s3://..., gcp: gs://...}}",
                )
            ]
    return []


# ---------------------------------------------------------------------------------------
# Loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys instead of keeping the last one."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if isinstance(key, list | dict):
            raise yaml.constructor.ConstructorError(None, None, "a mapping key must be a scalar", key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_fleet(data: object, source: str = "<fleet>") -> Fleet:
    """Validate already-parsed data (a mapping) into a Fleet, or raise FleetConfigError."""
    if data is None:
        raise FleetConfigError(source, [FieldError("", "file is empty; it needs at least 'global' and 'regions'")])
    if not isinstance(data, Mapping):
        raise FleetConfigError(
            source, [FieldError("", f"top level must be a mapping of keys, got {type(data).__name__}")]
        )
    try:
        fleet = Fleet.model_validate(dict(data))
    except ValidationError as exc:
        raise FleetConfigError(source, _pydantic_errors(exc)) from None
    errors = _semantic_errors(fleet)
    if errors:
        raise FleetConfigError(source, errors)
    return fleet


def parse_fleet_text(text: str, source: str = "<fleet>") -> Fleet:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise FleetConfigError(source, [FieldError("", f"YAML syntax error at {where}{what}")]) from None
    except yaml.YAMLError as exc:
        raise FleetConfigError(source, [FieldError("", f"YAML syntax error: {exc}")]) from None
    return parse_fleet(data, source)


def load_fleet(path: str | Path | None = None) -> Fleet:
    """Read and validate a fleet file (default: the repository's regions.yaml)."""
    p = Path(path) if path is not None else DEFAULT_FLEET_FILE
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FleetConfigError(str(p), [FieldError("", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FleetConfigError(str(p), [FieldError("", f"cannot read file: {exc}")]) from None
    return parse_fleet_text(text, str(p))
