"""The instance contract round-trips: what `regions.yaml` says is what the service runs with.

For every region of the default fleet and of a fleet that sets every instance field to a
non-default value: fleet -> `InstanceContract` -> the container's environment file (as the
boot script writes it) -> `python -m service --print-settings` in a process that sees only
that environment -> every field of the contract's service part equals the running
settings. A value the renderer, the environment format or the service's settings dropped
fails here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from contract.facts import KEYS_FILE_IN_CONTAINER, WEIGHTS_IN_CONTAINER, Cloud
from contract.instance import FeaturesContract, InstanceContract, ServiceContract
from infra.boot import container_env, instance_contract
from infra.config import DEFAULT_FLEET_FILE, Fleet, load_fleet, parse_fleet
from service.config.features import FeaturesSettings
from service.config.settings import ServiceSettings

REPO = Path(__file__).resolve().parents[2]

# Every instance-relevant field of the fleet file, each away from its default.
FULL_FLEET: dict[str, Any] = {
    "project": "fleet-full",
    "model": {
        "id": "Qwen/Qwen2.5-7B-Instruct",
        "served_name": "qwen-full",
        "quantization": "fp8",
        "checkpoint": "org/qwen-7b-custom",
        "max_model_len": 6144,
        "gpu_memory_utilization": 0.85,
        "weights_mirror": {"aws": "s3://weights-bucket/qwen", "gcp": "gs://weights-bucket/qwen"},
    },
    "service": {
        "image": "ghcr.io/example/fleet/service:9.9.9",
        "port": 8080,
        "max_tokens_cap": 777,
        "rate_limit_rpm": 41,
        "rate_limit_tpm": 9001,
        "cache_ttl_s": 123,
        "api_keys_secret": "keys-full",
        "registry_secret": "registry-full",
        "hf_token_secret": "hf-full",
        "cold_start_s": 901,
        "language_instruction": True,
    },
    "routing": {
        "default_model": "router",
        "pools": [
            {"name": "general", "model": "qwen-full", "intents": ["general", "math"]},
            {"name": "code", "model": "coder", "intents": ["code"], "url": "http://10.0.0.9:8000"},
        ],
    },
    "global": {"domain": "api.example.org", "hosted_zone": "example.org"},
    "gcp": {"project": "fleet-full-project"},
    "regions": [
        {"cloud": "aws", "region": "us-east-1", "gpu_type": "l4", "min_replicas": 1, "max_replicas": 2},
        {"cloud": "gcp", "region": "us-central1", "gpu_type": "l4", "min_replicas": 1, "max_replicas": 2},
    ],
}


def _fleets() -> list[tuple[str, Fleet, Any]]:
    default = load_fleet()
    full = parse_fleet(FULL_FLEET, "full")
    out = [(f"default-{r.stack_name}", default, r) for r in default.regions]
    return [*out, ("full-aws", full, full.regions[0]), ("full-gcp", full, full.regions[1])]


CASES = _fleets()


def _running_settings(env: dict[str, str]) -> dict[str, Any]:
    """What `python -m service` runs with, given only this environment (no flags)."""
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    proc = subprocess.run(
        [sys.executable, "-m", "service", "--print-settings"],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


def _leaves(model: BaseModel, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out |= _leaves(value, f"{prefix}{name}.")
        else:
            out[f"{prefix}{name}"] = value
    return out


def _lookup(document: dict[str, Any], dotted: str) -> Any:
    node: Any = document
    for part in dotted.split("."):
        node = node[part]
    return node


def _as_json(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_as_json(item) for item in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


@pytest.mark.parametrize(("name", "fleet", "region"), CASES, ids=[c[0] for c in CASES])
def test_every_contract_field_reaches_the_running_service(name: str, fleet: Fleet, region: Any) -> None:
    contract = instance_contract(fleet, region)
    running = _running_settings(container_env(contract))
    for field, value in _leaves(contract.service).items():
        if value is None:
            continue  # the service's own default: checked in test_unset_fields_mean_the_service_default
        assert _lookup(running, field) == _as_json(value), f"{name}: {field}"


def test_unset_fields_mean_the_service_default() -> None:
    """A None in the contract is left out of the environment; the service's default is None too
    (no value is invented on the way)."""
    for field, info in ServiceContract.model_fields.items():
        if info.default is None:
            assert ServiceSettings.model_fields[field].default is None or field in {
                "engine_start_timeout_s",
                "probe_interval_s",
                "probe_timeout_s",
                "restart_backoff_s",
                "log_level",
                "aws_poll_interval_s",
            }, field


def test_the_contract_names_only_settings_the_service_has() -> None:
    def names(model: type[BaseModel], prefix: str = "") -> set[str]:
        out: set[str] = set()
        for field, info in model.model_fields.items():
            annotation = info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                out |= names(annotation, f"{prefix}{field}.")
            else:
                out.add(prefix + field)
        return out

    service_fields = set(ServiceSettings.model_fields) | {
        f"features.{section}.{field}"
        for section, info in FeaturesSettings.model_fields.items()
        for field in info.annotation.model_fields  # type: ignore[union-attr]
    }
    missing = names(ServiceContract) - service_fields
    assert not missing, f"contract fields the service does not read: {sorted(missing)}"
    assert names(FeaturesContract, "features.") <= service_fields


def test_the_fleet_file_values_are_in_the_contract() -> None:
    fleet = parse_fleet(FULL_FLEET, "full")
    aws = instance_contract(fleet, fleet.regions[0])
    gcp = instance_contract(fleet, fleet.regions[1])
    s = aws.service
    assert s.model == WEIGHTS_IN_CONTAINER  # the mirror is mounted there
    assert s.served_model_name == "qwen-full"
    assert s.max_model_len == 6144
    assert s.gpu_memory_utilization == 0.85
    assert s.quantization is None  # a named checkpoint carries its own quantization config
    assert s.port == 8080
    assert s.max_tokens_cap == 777
    assert s.api_keys_file == KEYS_FILE_IN_CONTAINER
    assert s.features.rate_limit.requests_per_minute == 41
    assert s.features.rate_limit.tokens_per_minute == 9001
    assert s.features.cache.ttl_s == 123
    assert s.features.cache.enabled
    assert s.features.language.instruction_enabled
    assert s.features.routing.default_model == "router"
    assert [(p.name, p.url) for p in s.features.routing.pools] == [("general", None), ("code", "http://10.0.0.9:8000")]
    assert (s.watch_aws, s.watch_gcp) == (True, False)
    assert (gcp.service.watch_aws, gcp.service.watch_gcp) == (False, True)
    b = aws.boot
    assert (b.image, b.registry_secret, b.api_keys_secret, b.hf_token_secret) == (
        "ghcr.io/example/fleet/service:9.9.9",
        "registry-full",
        "keys-full",
        "hf-full",
    )
    assert b.weights_mirror == "s3://weights-bucket/qwen"
    assert b.cold_start_s == 901
    assert b.asg_name == "fleet-full-us-east-1-gpu"
    assert gcp.boot.gcp_project == "fleet-full-project"
    assert gcp.boot.weights_mirror == "gs://weights-bucket/qwen"
    assert gcp.boot.cloud == Cloud.GCP


def test_the_default_fleet_sets_its_context_and_the_schema_leaves_it_to_the_model() -> None:
    fleet = load_fleet()
    assert instance_contract(fleet, fleet.regions[0]).service.max_model_len == fleet.model.max_model_len == 8192
    data = yaml.safe_load(Path(DEFAULT_FLEET_FILE).read_text(encoding="utf-8"))
    del data["model"]["max_model_len"]
    unset = parse_fleet(data)
    assert unset.model.max_model_len is None
    contract = instance_contract(unset, unset.regions[0])
    assert "LLM_SERVICE_MAX_MODEL_LEN" not in container_env(contract)


def test_a_contract_is_frozen_and_refuses_inconsistent_watchers() -> None:
    fleet = load_fleet()
    contract = instance_contract(fleet, fleet.regions[0])
    data = contract.model_dump()
    data["service"]["watch_gcp"] = True
    with pytest.raises(ValueError, match="watch_aws"):
        InstanceContract.model_validate(data)
