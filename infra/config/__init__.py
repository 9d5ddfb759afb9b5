"""The fleet file: `regions.yaml` -> frozen, typed models.

- `schema`: the models (`Fleet`, `RegionSpec`, ...): structure, types, ranges.
- `validation`: the mistakes, one `FieldError` (field path + message) each, and the rules that
  need the whole fleet.
- `loading`: `load_fleet(path)`, the one entry point: a `Fleet`, or `FleetConfigError`.
"""

from infra.config.loading import DEFAULT_FLEET_FILE, load_fleet, parse_fleet, parse_fleet_text
from infra.config.schema import (
    MIRROR_SCHEME,
    QUANTIZED_CHECKPOINTS,
    AutoscaleSpec,
    Fleet,
    GcpSpec,
    GithubSpec,
    GlobalMode,
    GlobalSpec,
    ModelSpec,
    PoolSpec,
    Quantization,
    RegionSpec,
    RoutingSpec,
    ServiceSpec,
    StateSpec,
)
from infra.config.validation import FieldError, FleetConfigError, format_path

__all__ = [
    "DEFAULT_FLEET_FILE",
    "MIRROR_SCHEME",
    "QUANTIZED_CHECKPOINTS",
    "AutoscaleSpec",
    "FieldError",
    "Fleet",
    "FleetConfigError",
    "GcpSpec",
    "GithubSpec",
    "GlobalMode",
    "GlobalSpec",
    "ModelSpec",
    "PoolSpec",
    "Quantization",
    "RegionSpec",
    "RoutingSpec",
    "ServiceSpec",
    "StateSpec",
    "format_path",
    "load_fleet",
    "parse_fleet",
    "parse_fleet_text",
]
