"""The GitHub workflows: linters clean, hardening rules, and the deploy matrix from regions.yaml."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.delivery.conftest import ROOT

WORKFLOWS = ROOT / ".github" / "workflows"
BIN = ROOT / ".venv" / "bin"
FILES = sorted(WORKFLOWS.glob("*.yml"))
SHA_PIN = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _load(path: Path) -> dict[Any, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(doc, dict)
    return doc


def test_expected_workflows_exist() -> None:
    assert {p.name for p in FILES} >= {"ci.yml", "deploy.yml", "image.yml"}


def test_actionlint_clean() -> None:
    proc = subprocess.run(
        [str(BIN / "actionlint"), "-no-color"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_zizmor_no_findings_even_for_the_auditor_persona() -> None:
    # --persona auditor reports everything zizmor knows (pedantic and low-confidence too);
    # the workflows are held to zero findings with no ignores.
    proc = subprocess.run(
        [str(BIN / "zizmor"), "--offline", "--persona", "auditor", "--no-ignores", "--format", "json", str(WORKFLOWS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads(proc.stdout) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_hardening(path: Path) -> None:
    doc = _load(path)
    text = path.read_text(encoding="utf-8")
    assert doc.get("permissions") == {}, "top-level permissions must be empty; jobs ask for theirs"
    assert "pull_request_target" not in text
    triggers = doc.get(True) or doc.get("on")  # YAML 1.1 reads `on` as True
    if "workflow_call" not in triggers:
        assert "concurrency" in doc
    for name, job in doc["jobs"].items():
        if "uses" in job:  # a reusable workflow call: the callee sets runner limits
            assert job["uses"].startswith("$/.github/workflows/")
            continue
        assert "timeout-minutes" in job, name
        assert "permissions" in job, name
        for step in job["steps"]:
            if "uses" in step:
                assert SHA_PIN.match(step["uses"]), step["uses"]
            if "run" in step:
                assert "${{" not in step["run"], f"{name}: pass expressions through env, not into run"
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
    for line in text.splitlines():
        if re.search(r"uses: [\w.-]+/[\w./-]+@[0-9a-f]{40}", line):
            assert re.search(r"# v\d+\.\d+\.\d+$", line), f"version comment missing: {line.strip()}"


def test_cloud_access_is_oidc_only() -> None:
    text = "\n".join(p.read_text(encoding="utf-8") for p in FILES)
    assert "aws-access-key-id" not in text
    assert "credentials_json" not in text
    assert "role-to-assume" in text
    assert "workload_identity_provider" in text


def test_deploy_order_canary_regions_global() -> None:
    jobs = _load(WORKFLOWS / "deploy.yml")["jobs"]
    assert "apply-canary" in jobs["apply-regions"]["needs"]
    assert {"apply-canary", "apply-regions"} <= set(jobs["apply-global"]["needs"])
    callee = _load(WORKFLOWS / "apply-stack.yml")["jobs"]["apply"]
    assert callee["environment"] == "${{ inputs.stack }}"  # one GitHub environment per stack


def _matrix_step() -> dict[str, Any]:
    steps = _load(WORKFLOWS / "deploy.yml")["jobs"]["matrix"]["steps"]
    return next(s for s in steps if s.get("id") == "stacks")


def _run_matrix_step(fleet_file: Path, tmp_path: Path, only: str = "") -> dict[str, str]:
    """Run the deploy workflow's own matrix step, as the runner would, on a fleet file."""
    step = _matrix_step()
    out = tmp_path / "github_output"
    out.write_text("", encoding="utf-8")
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(out),
        "ONLY_STACK": only,
        "FLEET_FILE": str(fleet_file),
    }
    bash = shutil.which("bash")
    assert bash is not None
    proc = subprocess.run(
        [bash, "-eo", "pipefail", "-c", step["run"]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(line.split("=", 1) for line in out.read_text(encoding="utf-8").splitlines())


def test_matrix_step_uses_the_stack_listing() -> None:
    assert "python -m infra stacks --json" in _matrix_step()["run"]
    assert _matrix_step()["env"]["FLEET_FILE"] == "regions.yaml"


def test_added_region_appears_in_the_deploy_matrix(tmp_path: Path) -> None:
    text = (ROOT / "regions.yaml").read_text(encoding="utf-8")
    added = (
        "  - {cloud: aws, region: ap-northeast-1, gpu_type: l4, min_replicas: 1, max_replicas: 2, on_demand_base: 1}\n"
    )
    fleet_file = tmp_path / "regions.yaml"
    fleet_file.write_text(text.rstrip("\n") + "\n" + added, encoding="utf-8")

    before = _run_matrix_step(ROOT / "regions.yaml", tmp_path)
    after = _run_matrix_step(fleet_file, tmp_path)

    stacks_before = [e["stack"] for e in json.loads(before["stacks"])]
    stacks_after = [e["stack"] for e in json.loads(after["stacks"])]
    assert "aws-ap-northeast-1" not in stacks_before
    assert stacks_after == [*stacks_before[:-1], "aws-ap-northeast-1", "global"]
    regions = json.loads(after["regions"])
    assert {"stack": "aws-ap-northeast-1", "cloud": "aws", "region": "ap-northeast-1", "canary": False} in regions
    assert [e["stack"] for e in json.loads(after["canary"])] == ["aws-us-west-2"]
    assert after["global"] == "true"


def test_dispatch_one_region(tmp_path: Path) -> None:
    out = _run_matrix_step(ROOT / "regions.yaml", tmp_path, only="gcp-asia-southeast1")
    assert json.loads(out["canary"]) == []
    assert [e["stack"] for e in json.loads(out["regions"])] == ["gcp-asia-southeast1"]
    assert out["global"] == "false"


def test_dispatch_unknown_stack_is_one_line(tmp_path: Path) -> None:
    from scripts.ops import matrix

    listing = subprocess.run(
        [str(BIN / "python"), "-m", "infra", "stacks", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    path = tmp_path / "stacks.json"
    path.write_text(listing, encoding="utf-8")
    assert matrix.main([str(path), "--only", "aws-us-west-3"]) == 2


def test_the_fleets_image_is_what_the_image_workflow_pushes() -> None:
    """regions.yaml's `service.image` is ghcr.io/<github.repository>/service:<version>, and
    image.yml pushes that name with the project's version as a tag."""
    import tomllib

    from infra.config import load_fleet

    fleet = load_fleet()
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert fleet.service.image == f"ghcr.io/{fleet.github.repository.lower()}/service:{version}"
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "image.yml").read_text(encoding="utf-8"))
    steps = workflow["jobs"]["build"]["steps"]
    naming = next(step for step in steps if step.get("id") == "name")
    assert 'echo "image=ghcr.io/${REPOSITORY,,}/service"' in naming["run"]
    assert '["project"]["version"]' in naming["run"]
    build = next(step for step in steps if "docker/build-push-action" in step.get("uses", ""))
    assert build["with"]["file"] == "service/Dockerfile"
    assert "${{ steps.name.outputs.image }}:${{ steps.name.outputs.version }}" in build["with"]["tags"]
