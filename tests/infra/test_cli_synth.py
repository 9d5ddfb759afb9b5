"""`python -m infra synth --stack NAME` writes only that stack and loads only its bindings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_PROBE = """
import json, sys
from infra.cli import main
code = main(sys.argv[1:])
mods = sorted(m for m in sys.modules if m.startswith("cdktf_cdktf_provider"))
print(json.dumps({"code": code, "modules": mods}))
"""


@pytest.mark.slow
def test_synth_one_region_loads_only_aws_submodules_it_uses(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, "synth", "--stack", "aws-us-west-2", "--backend", "local", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    modules: list[str] = result["modules"]
    assert not [m for m in modules if m.startswith("cdktf_cdktf_provider_google")]
    submodules = {m.split(".")[1] for m in modules if m.count(".") >= 1 and not m.split(".")[1].startswith("_")}
    assert "vpc" in submodules
    assert "autoscaling_group" in submodules
    assert len(submodules) < 50, sorted(submodules)  # of ~2,100 in the package
    assert sorted(p.name for p in (out / "stacks").iterdir()) == ["aws-us-west-2"]


def test_synth_rejects_unknown_stack_in_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "infra", "synth", "--stack", "aws-mars-1", "--out", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("--stack: unknown stack 'aws-mars-1'")
