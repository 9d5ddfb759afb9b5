"""The default fleet synthesized (local state) and deployed to one moto_server, once per session.

Used by the AWS infra tier (synth asserts, terraform validate, checkov, the offline deploy
itself) and by the delivery tier (the boto3 operator tools read the deployed fleet).

- `default_fleet`: regions.yaml.
- `local_synth`: the default fleet's AWS side (bootstrap, AWS regions, global), local backend.
- `tf`: a terraform runner with its own CLI config for the local hashicorp/aws mirror.
- `moto_deployment`: bootstrap, every AWS region and global applied to moto_server with
  terraform (devkit/localcloud.py), destroyed at the end of the session.

A test that destroys the deployment carries the `destroys_moto_deployment` marker; such
tests run after every other test of the session, whatever order the paths were given in.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devkit import localcloud
from devkit.localcloud import FleetDeployment, aws_only, deploy_fleet
from infra.config import Fleet, load_fleet

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
def tf(tmp_path_factory: pytest.TempPathFactory) -> localcloud.TerraformRunner:
    try:
        return localcloud.make_runner(tmp_path_factory.mktemp("terraform"))
    except localcloud.HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)


@dataclass
class MotoDeployment:
    fleet: Fleet
    deployment: FleetDeployment

    @property
    def endpoint(self) -> str:
        return self.deployment.endpoint

    @property
    def dirs(self) -> dict[str, Path]:
        return self.deployment.dirs

    @property
    def outputs(self) -> dict[str, dict[str, Any]]:
        return self.deployment.outputs

    @property
    def zone_id(self) -> str:
        return self.deployment.zone_id

    @property
    def destroyed(self) -> bool:
        return self.deployment.destroyed

    @destroyed.setter
    def destroyed(self, value: bool) -> None:
        self.deployment.destroyed = value

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
    tf: localcloud.TerraformRunner, local_synth: Synth, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MotoDeployment]:
    """Apply bootstrap, every AWS region and global to one moto_server; destroy at the end.

    The same path as `make demo` (`devkit.localcloud.deploy_fleet`). The bootstrap applied is
    the AWS-only projection's (`aws_only`): the default fleet's bootstrap also holds the GCP
    workload identity pool, and hashicorp/google cannot be installed offline. The regional
    and global stacks are the default fleet's own; the GCP region is a provider-less
    stand-in that publishes the outputs global reads.
    """
    work = tmp_path_factory.mktemp("moto")
    fleet = local_synth.fleet
    bootstrap = synth_stacks(aws_only(fleet), ["bootstrap"], work / "synth-bootstrap", "local")
    replace = {"bootstrap": bootstrap.dir("bootstrap")}
    with contextlib.ExitStack() as stack:
        try:
            deployment = stack.enter_context(deploy_fleet(fleet, local_synth.root, work, replace=replace, runner=tf))
        except localcloud.HarnessError as exc:
            pytest.fail(f"offline deploy failed: {exc}", pytrace=False)
        yield MotoDeployment(fleet, deployment)
