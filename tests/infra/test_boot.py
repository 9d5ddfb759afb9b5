"""The boot template shared by both clouds: rendered per region, valid bash, fleet-driven."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from infra.boot import DRAIN_BUDGET_S, render_boot_script, stop_timeout_s
from infra.catalog import Cloud
from infra.config import Fleet, load_fleet, parse_fleet_text


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return load_fleet()


def test_boot_script_is_valid_bash_for_every_region(fleet: Fleet) -> None:
    bash = shutil.which("bash")
    assert bash is not None
    for region in fleet.regions:
        script = render_boot_script(fleet, region)
        proc = subprocess.run([bash, "-n"], input=script, text=True, capture_output=True, timeout=30, check=False)
        assert proc.returncode == 0, f"{region.stack_name}: {proc.stderr}"


def test_boot_script_carries_the_fleet_settings(fleet: Fleet) -> None:
    aws = fleet.regions_of(Cloud.AWS)[0]
    script = render_boot_script(fleet, aws)
    assert script.startswith("#!/bin/bash\n")
    assert f"readonly IMAGE={fleet.service.image}" in script
    assert f"readonly MODEL={fleet.model.engine_checkpoint}" in script
    assert f"readonly MAX_MODEL_LEN={fleet.model.max_model_len}" in script
    assert f"readonly SERVED_NAME={fleet.model.served_name}" in script
    assert f"readonly MAX_TOKENS_CAP={fleet.service.max_tokens_cap}" in script
    assert "readonly DRAIN_WATCHER=aws" in script
    assert "--gpus all" in script
    assert "nvidia-ctk runtime configure --runtime=docker" in script
    assert "aws secretsmanager get-secret-value" in script
    assert "systemctl enable --now llm-fleet.service" in script
    assert "--stop-timeout ${STOP_TIMEOUT_S}" in script


def test_stop_timeout_outlasts_the_drain_budget() -> None:
    for cloud in Cloud:
        assert stop_timeout_s(cloud) > DRAIN_BUDGET_S[cloud]
    assert DRAIN_BUDGET_S[Cloud.AWS] == 120


def test_gcp_region_uses_gcp_tools(fleet: Fleet) -> None:
    gcp = fleet.regions_of(Cloud.GCP)[0]
    script = render_boot_script(fleet, gcp)
    assert "readonly CLOUD=gcp" in script
    assert "readonly DRAIN_WATCHER=gcp" in script
    assert f"readonly STOP_TIMEOUT_S={stop_timeout_s(Cloud.GCP)}" in script


def test_weights_mirror_and_quoting() -> None:
    fleet = parse_fleet_text(
        "global: {domain: api.example.com, hosted_zone: example.com}\n"
        "model: {id: Qwen/Qwen2.5-7B-Instruct, weights_mirror: s3://weights/qwen 7b}\n"
        "regions: [{cloud: aws, region: us-west-2, gpu_type: a10g, min_replicas: 1, max_replicas: 1}]\n"
    )
    script = render_boot_script(fleet, fleet.regions[0])
    # shell-quoted: the space cannot split the value or inject a command
    assert "readonly WEIGHTS_MIRROR='s3://weights/qwen 7b'" in script
    assert "aws s3 sync" in script
