"""Session fixtures for the AWS infra tier: synth once, terraform once per stack, one checkov
run, one moto deployment. Everything heavy starts once per session."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.config import Fleet, load_fleet, parse_fleet_text
from infra.localcloud import gcp_stand_in
from tests.infra import tfharness as tfh

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
CHECKOV = REPO / ".venv-tools" / "bin" / "checkov"


def aws_side(fleet: Fleet) -> list[str]:
    """Every stack this tier builds: bootstrap, the AWS regions and global (not gcp-*)."""
    return [n for n in fleet.stack_names() if not n.startswith("gcp-")]


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
    # AWS-only fleet behind Global Accelerator.
    "accelerator": fleet_yaml(
        "  - {cloud: aws, region: us-west-2, gpu_type: a10g, min_replicas: 1, max_replicas: 2, on_demand_base: 1}\n"
        "  - {cloud: aws, region: eu-central-1, gpu_type: t4, min_replicas: 1, max_replicas: 2}\n",
        mode="global-accelerator",
    ),
    # Two fleet regions in one latency region (gcp us-west1 -> aws us-west-2), plus reservations.
    "shared": fleet_yaml(
        "  - {cloud: aws, region: us-west-2, gpu_type: l4, min_replicas: 2, max_replicas: 4, on_demand_base: 2,"
        " capacity_reservations: [cr-0123456789abcdef0, cr-0fedcba9876543210]}\n"
        "  - {cloud: gcp, region: us-west1, gpu_type: l4, min_replicas: 1, max_replicas: 2}\n",
        extra="autoscale: {metric: gpu_utilization, target: 70}\n"
        "model: {id: Qwen/Qwen2.5-7B-Instruct, weights_mirror: s3://llm-weights/qwen2.5-7b}\n",
    ),
}


@dataclass(frozen=True)
class Synth:
    fleet: Fleet
    root: Path  # .../stacks
    stacks: dict[str, dict[str, Any]]

    def dir(self, name: str) -> Path:
        return self.root / name


def _synth(fleet: Fleet, names: list[str], out: Path, backend: str) -> Synth:
    from infra.app import synth

    root = synth(fleet, names, outdir=out, backend=backend) / "stacks"  # type: ignore[arg-type]
    stacks = {n: json.loads((root / n / "cdk.tf.json").read_text()) for n in names}
    return Synth(fleet, root, stacks)


@pytest.fixture(scope="session")
def default_fleet() -> Fleet:
    return load_fleet()


@pytest.fixture(scope="session")
def local_synth(default_fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The default fleet's AWS side, local state (what validate, checkov and moto use)."""
    return _synth(default_fleet, aws_side(default_fleet), tmp_path_factory.mktemp("synth-local"), "local")


@pytest.fixture(scope="session")
def fleet_synth(default_fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The default fleet as operators synthesize it (S3 backend)."""
    names = ["bootstrap", "aws-eu-central-1", "global"]
    return _synth(default_fleet, names, tmp_path_factory.mktemp("synth-fleet"), "fleet")


@pytest.fixture(scope="session")
def variant_synths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Synth]:
    out: dict[str, Synth] = {}
    for name, text in VARIANTS.items():
        fleet = parse_fleet_text(text, f"<{name}>")
        out[name] = _synth(fleet, aws_side(fleet), tmp_path_factory.mktemp(f"synth-{name}"), "local")
    return out


# ---------------------------------------------------------------------------------------
# terraform


@pytest.fixture(scope="session")
def tf(tmp_path_factory: pytest.TempPathFactory) -> tfh.TerraformRunner:
    try:
        return tfh.make_runner(tmp_path_factory.mktemp("terraform"))
    except tfh.HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def validations(
    tf: tfh.TerraformRunner, local_synth: Synth, variant_synths: dict[str, Synth]
) -> dict[str, dict[str, Any]]:
    """`terraform init` + `validate -json` of every synthesized AWS-side stack, once."""
    results: dict[str, dict[str, Any]] = {}
    targets = {f"default/{n}": local_synth.dir(n) for n in local_synth.stacks}
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
    if not CHECKOV.exists():
        pytest.fail(f"checkov not found at {CHECKOV} (make setup installs it)", pytrace=False)
    root = tmp_path_factory.mktemp("checkov")
    for label, synth in {"default": local_synth, **variant_synths}.items():
        for name in synth.stacks:
            dest = root / label / name
            dest.mkdir(parents=True)
            shutil.copy(synth.dir(name) / "cdk.tf.json", dest / "cdk.tf.json")
    proc = subprocess.run(
        [str(CHECKOV), "--framework", "terraform_json", "-d", str(root), "-o", "json", "--compact"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"},
    )
    if proc.returncode not in (0, 1):
        pytest.fail(f"checkov exited {proc.returncode}: {proc.stderr[-2000:]}", pytrace=False)
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    (only,) = [r for r in reports if r.get("check_type") == "terraform_json"]
    result: dict[str, Any] = {**only, "root": root}
    return result


# ---------------------------------------------------------------------------------------
# moto


@dataclass
class MotoDeployment:
    endpoint: str
    dirs: dict[str, Path]
    outputs: dict[str, dict[str, Any]]
    zone_id: str
    destroyed: bool = False

    def client(self, service: str, region: str = "us-east-1") -> Any:
        import boto3

        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )


@pytest.fixture(scope="session")
def moto_deployment(
    tf: tfh.TerraformRunner, local_synth: Synth, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MotoDeployment]:
    """Apply bootstrap, every AWS region and global to one moto_server; destroy at the end."""
    import boto3

    work = tmp_path_factory.mktemp("moto")
    fleet = local_synth.fleet
    env = {
        "MOTO_ACM_VALIDATION_WAIT": "0",  # certificates are ISSUED once their records exist
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",  # AmazonSSMManagedInstanceCore
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    with tfh.MotoServer(VENV_BIN / "moto_server", log=work / "moto.log", env=env) as moto:
        r53 = boto3.client(
            "route53",
            region_name="us-east-1",
            endpoint_url=moto.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        # The hosted zone pre-exists in every real account (the stacks look it up by name).
        zone = r53.create_hosted_zone(Name=fleet.global_.hosted_zone, CallerReference="llm-fleet-tests")
        zone_id = zone["HostedZone"]["Id"].split("/")[-1]

        names = aws_side(fleet)
        copies = tfh.copy_stacks(local_synth.root, [n for n in names if n != "global"], work / "stacks")
        for region in fleet.regions:
            if region.cloud.value == "gcp":
                d = work / "stacks" / region.stack_name
                gcp_stand_in(d, region.stack_name, region.region, fleet.global_.domain)
                copies[region.stack_name] = d
        copies.update(tfh.copy_stacks(local_synth.root, ["global"], work / "stacks"))
        ordered = {n: copies[n] for n in fleet.stack_names() if n in copies}
        try:
            outputs = tfh.deploy_to_moto(tf, ordered, moto.endpoint)
        except tfh.HarnessError as exc:
            tfh.destroy_stacks(tf, ordered)
            pytest.fail(f"offline deploy failed: {exc}", pytrace=False)
        deployment = MotoDeployment(moto.endpoint, ordered, outputs, zone_id)
        yield deployment
        if not deployment.destroyed:
            tfh.destroy_stacks(tf, ordered)
