"""The whole lifecycle through the installed `llm-fleet`, against moto_server with terraform.

One AWS-only fleet (bootstrap, one AWS region, global) on a local moto_server (devkit's, with
the public Deep Learning AMI parameter answered), aimed at by the standard AWS_ENDPOINT_URL with
the `test`/`test` credentials, state in local files (`--backend local`), terraform through the
local hashicorp/aws mirror. Nothing in the synthesized stacks is changed for moto: the CLI
writes only its endpoint override. Steps: `deploy` (synthesizes and applies the three stacks),
`status` (the boto3 tool's view), `plan` (no changes for bootstrap and global; the regional
stack shows only moto's known re-plan gaps, as in the infra tier), `destroy` confirmed through a
terminal, then `destroy bootstrap`. Each step's seconds are recorded (junit properties, printed).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devkit.localcloud import MOTO_ENV, HarnessError, MotoServer, provider_mirror, write_cli_config
from tests.cli.conftest import AWS_ONLY, Result, base_env, run_cli, run_with_terminal_stdin
from tests.infra.test_moto_deploy import MOTO_REPLAN_GAPS

pytestmark = [pytest.mark.terraform, pytest.mark.moto, pytest.mark.slow, pytest.mark.timeout(3000)]

STACKS = ("bootstrap", "aws-us-west-2", "global")
STEP_TIMEOUT_S = 1200


@dataclass
class LocalCloud:
    endpoint: str
    env: dict[str, str]
    fleet: Path
    out: Path

    def client(self, service: str, region: str = "us-east-1") -> Any:
        import boto3

        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )


@pytest.fixture
def cloud(tmp_path: Path) -> Iterator[LocalCloud]:
    try:
        mirror = provider_mirror()
    except HarnessError as exc:
        pytest.fail(str(exc), pytrace=False)
    cli_config = write_cli_config(tmp_path / "terraform", mirror)
    cache = tmp_path / "terraform" / "plugin-cache"
    cache.mkdir()
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(AWS_ONLY, encoding="utf-8")
    with MotoServer(log=tmp_path / "moto.log", env=MOTO_ENV) as moto:
        env = base_env(
            tmp_path,
            AWS_ENDPOINT_URL=moto.endpoint,
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_DEFAULT_REGION="us-east-1",
            TF_CLI_CONFIG_FILE=str(cli_config),
            TF_PLUGIN_CACHE_DIR=str(cache),
        )
        local = LocalCloud(moto.endpoint, env, fleet, tmp_path / "cdktf.out")
        # The hosted zone pre-exists in every real account (a prerequisite the CLI checks).
        local.client("route53").create_hosted_zone(Name="example.com", CallerReference="llm-fleet-cli-test")
        yield local


def _table(result: Result) -> dict[str, list[str]]:
    rows = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 1 and cells[0] in STACKS:
            rows[cells[0]] = cells
    return rows


def test_deploy_status_plan_destroy(cloud: LocalCloud, record_property: Any) -> None:
    common = ["--file", str(cloud.fleet), "--backend", "local", "--out", str(cloud.out)]
    seconds: dict[str, float] = {}

    def timed(step: str, call: Any) -> Result:
        started = time.monotonic()
        result: Result = call()
        seconds[step] = round(time.monotonic() - started, 1)
        record_property(f"{step}_s", seconds[step])
        return result

    # 1. deploy: synthesizes the three stacks, applies them in order, a table with the endpoints
    deploy = timed(
        "deploy", lambda: run_cli("deploy", *common, "--auto-approve", env=cloud.env, timeout=STEP_TIMEOUT_S)
    )
    assert deploy.code == 0, deploy
    rows = _table(deploy)
    assert list(rows) == list(STACKS)
    assert {r[1] for r in rows.values()} == {"applied"}
    assert rows["aws-us-west-2"][3] == "https://us-west-2.api.example.com"
    assert rows["global"][3] == "https://api.example.com"
    assert rows["bootstrap"][3] == "s3://llm-fleet-cli-test-state"
    assert re.search(r"✓ \[2/3\] aws-us-west-2: applied \(\+\d+ ~0 ±0 -0\)", deploy.stderr)
    assert f"AWS_ENDPOINT_URL={cloud.endpoint}" in deploy.stderr
    regional = cloud.out / "stacks" / "aws-us-west-2"
    overrides = sorted(p.name for p in regional.glob("*override*.tf.json"))
    assert overrides == ["zz_llm_fleet_endpoints_override.tf.json"]  # the stacks as synthesized, plus the endpoint
    asgs = cloud.client("autoscaling", "us-west-2").describe_auto_scaling_groups()["AutoScalingGroups"]
    assert [a["AutoScalingGroupName"] for a in asgs] == ["llm-fleet-us-west-2-gpu"]
    assert cloud.client("s3").head_bucket(Bucket="llm-fleet-cli-test-state")

    # 2. status: the fleet_status tool's data through the same credential chain
    status = timed("status", lambda: run_cli("status", "--file", str(cloud.fleet), env=cloud.env))
    assert status.code == 0, status
    assert "llm-fleet-us-west-2-gpu" in status.stdout
    assert "us-west-2.api.example.com: healthy" in status.stdout

    # 3. plan: freshly synthesized bootstrap and global have no changes (exit 0) ...
    clean = timed(
        "plan_clean",
        lambda: run_cli("plan", "bootstrap", "global", *common, env=cloud.env, timeout=STEP_TIMEOUT_S),
    )
    assert clean.code == 0, clean
    assert {r[1] for r in _table(clean).values()} == {"no changes"}
    # ... and the regional stack shows only in-place updates of moto's known re-plan gaps (exit 2)
    gaps = timed(
        "plan_regional",
        lambda: run_cli("plan", "aws-us-west-2", *common, "--no-synth", env=cloud.env, timeout=STEP_TIMEOUT_S),
    )
    assert gaps.code == 2, gaps
    changed = re.findall(r"^\s+(\S+) (aws_[a-z0-9_]+)\.", gaps.stdout, flags=re.MULTILINE)
    assert changed
    gap_types = {resource for resource, _ in MOTO_REPLAN_GAPS}
    assert all(symbol == "~" and kind in gap_types for symbol, kind in changed), changed

    # 4. destroy, confirmed through a terminal: global, then the region (bootstrap is kept by default)
    destroy = timed(
        "destroy",
        lambda: run_with_terminal_stdin(
            "destroy", *common, "--no-synth", env=cloud.env, answers="y\ny\n", timeout=STEP_TIMEOUT_S
        ),
    )
    assert destroy.code == 0, destroy
    assert list(_table(destroy)) == ["global", "aws-us-west-2"]
    assert re.search(r"global: 0 to create, 0 to update, 0 to replace, \d+ to destroy", destroy.stderr)
    assert "Destroy global? [y/n] (n):" in destroy.stderr
    assert cloud.client("autoscaling", "us-west-2").describe_auto_scaling_groups()["AutoScalingGroups"] == []
    assert cloud.client("s3").head_bucket(Bucket="llm-fleet-cli-test-state")  # the state bucket stays

    # 5. the bootstrap stack, named explicitly
    bootstrap = timed(
        "destroy_bootstrap",
        lambda: run_cli("destroy", "bootstrap", *common, "--no-synth", "-y", env=cloud.env, timeout=STEP_TIMEOUT_S),
    )
    assert bootstrap.code == 0, bootstrap
    assert [r[1] for r in _table(bootstrap).values()] == ["destroyed"]
    names = [b["Name"] for b in cloud.client("s3").list_buckets()["Buckets"]]
    assert "llm-fleet-cli-test-state" not in names
    print(f"\nllm-fleet against moto, seconds per step: {seconds}")
