"""One offline checkov run over a directory of synthesized `cdk.tf.json` files.

Both infra tiers (AWS in tests/infra, GCP in tests/gcp) scan their synth output with it.
checkov comes from the tools environment `make setup` builds (`.venv-tools`); the run is
offline: no guideline download, no platform mapping, no package scan.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CHECKOV = REPO / ".venv-tools" / "bin" / "checkov"
OFFLINE_ENV = {"BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}


def collect(root: Path, files: dict[str, Path]) -> Path:
    """Copy each `label/stack -> its cdk.tf.json` under `root` (JSON only: no .terraform
    directories or providers for checkov to wander into); returns `root`."""
    for relative, source in files.items():
        dest = root / relative
        dest.mkdir(parents=True)
        (dest / "cdk.tf.json").write_bytes(source.read_bytes())
    return root


def run_checkov(root: Path, *, timeout_s: float = 600) -> dict[str, Any]:
    """checkov's terraform_json report for every file under `root`; fails the test session
    with one line when checkov is missing, crashes or times out."""
    if not CHECKOV.exists():
        pytest.fail(f"checkov not found at {CHECKOV} (make setup installs it)", pytrace=False)
    command = [str(CHECKOV), "--framework", "terraform_json", "-d", str(root), "-o", "json"]
    try:
        proc = subprocess.run(
            [*command, "--compact", "--skip-download"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            env={**os.environ, **OFFLINE_ENV},
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"checkov did not finish within {timeout_s:g} s over {root}", pytrace=False)
    if proc.returncode not in (0, 1):  # 1: some check failed; the tests say which
        pytest.fail(f"checkov exited {proc.returncode}: {proc.stderr[-2000:]}", pytrace=False)
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    (only,) = [r for r in reports if r.get("check_type") == "terraform_json"]
    result: dict[str, Any] = {**only, "root": root}
    return result
