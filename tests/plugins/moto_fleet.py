"""The default fleet synthesized (local state) and deployed to one moto_server, once per session.

Used by the AWS infra tier (synth asserts, terraform validate, checkov, the offline deploy
itself) and by the delivery tier (the boto3 operator tools read the deployed fleet).

- `default_fleet`: regions.yaml.
- `local_synth`: the default fleet's AWS side (bootstrap, AWS regions, global), local backend.
- `tf`: a terraform runner with its own CLI config for the local hashicorp/aws mirror.
- `moto_deployment`: bootstrap, every AWS region and global applied to moto_server with
  terraform (tests/infra/tfharness.py), destroyed at the end of the session.

A test that destroys the deployment carries the `destroys_moto_deployment` marker; such
tests run after every other test of the session, whatever order the paths were given in.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra.catalog import Cloud
from infra.config import Fleet, load_fleet, parse_fleet
from infra.localcloud import gcp_stand_in
from tests.infra import tfharness as tfh

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
DESTROYS = "destroys_moto_deployment"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{DESTROYS}: destroys the session's moto deployment (runs last)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the tests that destroy the shared deployment behind every test that reads it."""
    items.sort(key=lambda item: item.get_closest_marker(DESTROYS) is not None)  # stable sort


def aws_side(fleet: Fleet) -> list[str]:
    """Every stack the AWS side builds: bootstrap, the AWS regions and global (not gcp-*)."""
    return [n for n in fleet.stack_names() if not n.startswith("gcp-")]


def aws_only(fleet: Fleet) -> Fleet:
    """The fleet without its GCP regions (same project, state bucket, repository, domain).

    Its bootstrap stack has no Google provider. There is no offline mirror of
    hashicorp/google, so terraform can only init, validate and apply the AWS-only bootstrap.
    """
    data = fleet.model_dump(mode="json", by_alias=True)
    data["regions"] = [r for r in data["regions"] if r["cloud"] != Cloud.GCP.value]
    return parse_fleet(data, "<aws-only projection>")


@dataclass(frozen=True)
class Synth:
    fleet: Fleet
    root: Path  # .../stacks
    stacks: dict[str, dict[str, Any]]

    def dir(self, name: str) -> Path:
        return self.root / name


def synth_stacks(fleet: Fleet, names: list[str], out: Path, backend: str) -> Synth:
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
    return synth_stacks(default_fleet, aws_side(default_fleet), tmp_path_factory.mktemp("synth-local"), "local")


@pytest.fixture(scope="session")
def tf(tmp_path_factory: pytest.TempPathFactory) -> tfh.TerraformRunner:
    try:
        return tfh.make_runner(tmp_path_factory.mktemp("terraform"))
    except tfh.HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)


@dataclass
class MotoDeployment:
    fleet: Fleet
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
    """Apply bootstrap, every AWS region and global to one moto_server; destroy at the end.

    The bootstrap applied is the AWS-only projection's (`aws_only`): the default fleet's
    bootstrap also holds the GCP workload identity pool, and hashicorp/google cannot be
    installed offline. The regional and global stacks are the default fleet's own; the GCP
    region is a provider-less stand-in that publishes the outputs global reads.
    """
    import boto3

    work = tmp_path_factory.mktemp("moto")
    fleet = local_synth.fleet
    env = {
        "MOTO_ACM_VALIDATION_WAIT": "0",  # certificates are ISSUED once their records exist
        "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",  # AmazonSSMManagedInstanceCore, ReadOnlyAccess, ...
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    bootstrap = synth_stacks(aws_only(fleet), ["bootstrap"], work / "synth-bootstrap", "local")
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
        copies = tfh.copy_stacks(bootstrap.root, ["bootstrap"], work / "stacks")
        regional = [n for n in names if n not in ("bootstrap", "global")]
        copies |= tfh.copy_stacks(local_synth.root, regional, work / "stacks")
        for region in fleet.regions_of(Cloud.GCP):
            d = work / "stacks" / region.stack_name
            gcp_stand_in(d, region.stack_name, region.region, fleet.global_.domain)
            copies[region.stack_name] = d
        copies |= tfh.copy_stacks(local_synth.root, ["global"], work / "stacks")
        ordered = {n: copies[n] for n in fleet.stack_names() if n in copies}
        try:
            outputs = tfh.deploy_to_moto(tf, ordered, moto.endpoint)
        except tfh.HarnessError as exc:
            tfh.destroy_stacks(tf, ordered)
            pytest.fail(f"offline deploy failed: {exc}", pytrace=False)
        deployment = MotoDeployment(fleet, moto.endpoint, ordered, outputs, zone_id)
        yield deployment
        if not deployment.destroyed:
            tfh.destroy_stacks(tf, ordered)
