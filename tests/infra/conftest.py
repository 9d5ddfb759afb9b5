"""Session fixtures for the AWS infra tier: synth once, terraform once per stack, one checkov
run. Everything heavy starts once per session.

The default fleet's synth (`local_synth`), the terraform runner (`tf`) and the moto
deployment (`moto_deployment`) are shared with the delivery tier: they live in
tests/plugins/moto_fleet.py (registered by tests/conftest.py) so they start once per session.
"""

from __future__ import annotations

from typing import Any

import pytest

from devkit import localcloud
from devkit.localcloud import GCP_STAND_IN_IP
from infra.config import Fleet, parse_fleet_text
from tests.plugins.checkov import collect, run_checkov
from tests.plugins.moto_fleet import (  # re-exported for the tier's test modules
    MotoDeployment,
    Synth,
    aws_side,
    synth_stacks,
)

__all__ = ["GCP_STAND_IN_IP", "MotoDeployment", "Synth"]


def fleet_yaml(regions: str, *, mode: str = "latency-dns", extra: str = "") -> str:
    return (
        "project: llm-fleet\n"
        f"global: {{domain: api.example.com, hosted_zone: example.com, mode: {mode}}}\n"
        "gcp: {project: llm-fleet-example}\n"
        "state: {bucket: llm-fleet-tfstate-test, region: us-east-1}\n"
        f"{extra}"
        f"regions:\n{regions}"
    )


# Variants of the default fleet that exercise the other branches of the stacks.
VARIANTS: dict[str, str] = {
    # AWS-only fleet behind Global Accelerator; an unquantized model on V100 (p3: no local NVMe).
    "accelerator": fleet_yaml(
        "  - {cloud: aws, region: us-west-2, gpu_type: a10g, min_replicas: 1, max_replicas: 2, on_demand_base: 1}\n"
        "  - {cloud: aws, region: eu-central-1, gpu_type: v100, min_replicas: 1, max_replicas: 2}\n",
        mode="global-accelerator",
        extra="model: {id: Qwen/Qwen2.5-7B-Instruct, quantization: none}\n"
        "github: {repository: llm-fleet/llm-fleet, oidc_provider: existing}\n",
    ),
    # Two fleet regions in one latency region (gcp us-west1 -> aws us-west-2), plus reservations.
    "shared": fleet_yaml(
        "  - {cloud: aws, region: us-west-2, gpu_type: l4, min_replicas: 2, max_replicas: 4, on_demand_base: 2,"
        " capacity_reservations: [cr-0123456789abcdef0, cr-0fedcba9876543210]}\n"
        "  - {cloud: gcp, region: us-west1, gpu_type: l4, min_replicas: 1, max_replicas: 2}\n",
        extra="autoscale: {metric: gpu_utilization, target: 70}\n"
        "model: {id: Qwen/Qwen2.5-7B-Instruct,"
        " weights_mirror: {aws: s3://llm-weights/qwen2.5-7b, gcp: gs://llm-weights-gcp/qwen2.5-7b}}\n"
        "service: {hf_token_secret: llm-fleet-hf-token, registry_secret: llm-fleet-registry}\n",
    ),
}


@pytest.fixture(scope="session")
def fleet_synth(default_fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The default fleet as operators synthesize it (S3 backend)."""
    names = ["bootstrap", "aws-eu-central-1", "global"]
    return synth_stacks(default_fleet, names, tmp_path_factory.mktemp("synth-fleet"), "fleet")


@pytest.fixture(scope="session")
def variant_synths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    out: dict[str, Synth] = {}
    for name, text in VARIANTS.items():
        fleet = parse_fleet_text(text, f"<{name}>")
        out[name] = synth_stacks(fleet, aws_side(fleet), tmp_path_factory.mktemp(f"synth-{name}"), "local")
    return out


# ---------------------------------------------------------------------------------------
# terraform


@pytest.fixture(scope="session")
def validations(
    tf: localcloud.TerraformRunner, local_synth: Synth, variant_synths: dict[str, Synth]
) -> dict[str, dict[str, Any]]:
    """`terraform init` + `validate -json` of every synthesized AWS-side stack, once."""
    results: dict[str, dict[str, Any]] = {}
    # The default fleet has a GCP region, so its bootstrap carries the Google provider (the
    # GitHub workload identity pool); there is no offline mirror of hashicorp/google, so the
    # bootstrap validated is an AWS-only fleet's (same constructs, without the GCP trust).
    targets = {f"default/{n}": local_synth.dir(n) for n in local_synth.stacks if n != "bootstrap"}
    targets["accelerator/bootstrap"] = variant_synths["accelerator"].dir("bootstrap")
    targets["accelerator/global"] = variant_synths["accelerator"].dir("global")
    targets["shared/global"] = variant_synths["shared"].dir("global")
    targets["shared/aws-us-west-2"] = variant_synths["shared"].dir("aws-us-west-2")
    for key, path in targets.items():
        tf.init(path)
        results[key] = tf.validate(path)
    return results


# ---------------------------------------------------------------------------------------
# checkov


@pytest.fixture(scope="session")
def checkov_report(
    local_synth: Synth, variant_synths: dict[str, Synth], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One checkov run over every synthesized stack (JSON only, no .terraform dirs)."""
    files = {
        f"{label}/{name}": synth.dir(name) / "cdk.tf.json"
        for label, synth in {"default": local_synth, **variant_synths}.items()
        for name in synth.stacks
    }
    return run_checkov(collect(tmp_path_factory.mktemp("checkov"), files))
