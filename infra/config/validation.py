"""What is wrong with a fleet file, one `FieldError` (field path + message) per mistake.

Structural mistakes (unknown keys, wrong types, missing fields) come from pydantic and are
reworded here (`pydantic_errors`: did-you-mean, allowed values); semantic ones (a region of
another cloud, a GPU the cloud does not sell, min > max, ...) come from `semantic_errors`,
which sees the whole fleet.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from infra.catalog import GPU_OFFERINGS, GPUS, REGIONS, Cloud
from infra.config.schema import MIRROR_SCHEME, Fleet, GlobalMode, Quantization


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


def pydantic_errors(exc: ValidationError) -> list[FieldError]:
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


def semantic_errors(fleet: Fleet) -> list[FieldError]:
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
