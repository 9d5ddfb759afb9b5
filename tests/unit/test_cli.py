"""`python -m infra check|stacks` as operators and CI call it (real subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from infra.config import DEFAULT_FLEET_FILE

ROOT = DEFAULT_FLEET_FILE.parent


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_check_default_prints_summary_table() -> None:
    res = run("check")
    assert res.returncode == 0, res.stderr
    assert "(valid)" in res.stdout
    for name in ("aws-us-west-2", "aws-eu-central-1", "gcp-asia-southeast1"):
        assert name in res.stdout
    assert "g5.xlarge" in res.stdout


def test_check_invalid_file_exits_2_one_line_per_problem(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_FLEET_FILE.read_text())
    data["regions"][0]["min_replicas"] = 7
    data["regions"][1]["gpu_type"] = "v100"
    bad = tmp_path / "fleet.yaml"
    bad.write_text(yaml.safe_dump(data))
    res = run("check", str(bad))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[0] == f"{bad}: regions[0].min_replicas: 7 is above max_replicas (3)"
    assert lines[1].startswith(f"{bad}: regions[1].gpu_type: 'v100' cannot run int8")
    assert lines[2] == f"{bad}: invalid fleet file (2 problems)"


def test_check_yaml_error_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "fleet.yaml"
    bad.write_text("regions:\n  - {cloud: aws\nglobal: [\n")
    res = run("check", str(bad))
    assert res.returncode == 2
    assert "YAML syntax error at line" in res.stderr
    assert "Traceback" not in res.stderr


def test_unknown_subcommand_and_stack_exit_2() -> None:
    assert run("frobnicate").returncode == 2
    res = run("synth", "--stack", "aws-mars-1")
    assert res.returncode == 2
    assert "--stack: unknown stack 'aws-mars-1'" in res.stderr
    assert "Traceback" not in res.stderr


def test_stacks_json_matches_fleet() -> None:
    res = run("stacks", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["stacks"] == ["bootstrap", "aws-us-west-2", "aws-eu-central-1", "gcp-asia-southeast1", "global"]
    canary = [e for e in doc["include"] if e["canary"]]
    assert [e["stack"] for e in canary] == ["aws-us-west-2"]
    assert {e["stack"]: e["cloud"] for e in doc["include"]}["gcp-asia-southeast1"] == "gcp"


def test_stacks_json_follows_an_added_region(tmp_path: Path) -> None:
    data = yaml.safe_load(DEFAULT_FLEET_FILE.read_text())
    data["regions"].append(
        {"cloud": "aws", "region": "ap-northeast-1", "gpu_type": "l4", "min_replicas": 0, "max_replicas": 2}
    )
    path = tmp_path / "regions.yaml"
    path.write_text(yaml.safe_dump(data))
    doc = json.loads(run("stacks", "--json", "--file", str(path)).stdout)
    assert "aws-ap-northeast-1" in doc["stacks"]
    assert doc["stacks"][-1] == "global"
