"""The `llm-fleet` tier: the installed console script run as an operator runs it.

- `run_cli(args, env=...)`: `.venv/bin/llm-fleet` (installed by `pip install -e .`) in a
  subprocess, with an environment holding no cloud credentials unless the test adds them.
- `fake_bin`: a PATH directory with a stand-in `terraform` (tests/cli/fake_terraform.py).
- `gcp_only_fleet`: a fleet file whose regions are GCP only, so that with `--backend local`
  a lifecycle command needs Google credentials (an offline `authorized_user` file) and no AWS.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / ".venv" / "bin" / "llm-fleet"
HERE = Path(__file__).resolve().parent

# Variables that would let a test reach a real account or change the CLI's defaults.
_DROP_PREFIXES = ("AWS_", "GOOGLE_", "CLOUDSDK_", "LLM_FLEET_", "OPENAI_", "TF_", "GCE_")


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def base_env(tmp: Path, **extra: str) -> dict[str, str]:
    """No cloud credentials, no profile, no instance metadata; wide plain output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES)}
    env.update(
        {
            "HOME": str(tmp),
            "AWS_CONFIG_FILE": str(tmp / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "CLOUDSDK_CONFIG": str(tmp / "no-gcloud"),
            "NO_COLOR": "1",
            "COLUMNS": "200",
            "TERM": "dumb",
        }
    )
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None, stdin: str | None = None, timeout: float = 120
) -> Result:
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} missing: run `.venv/bin/python -m pip install --no-deps -e .`")
    proc = subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd or REPO,
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(result: Result, *needles: str, code: int) -> str:
    """Exit `code`, exactly one stderr line, `llm-fleet: error: ...`, no traceback."""
    assert result.code == code, result
    assert "Traceback" not in result.stderr + result.stdout
    assert len(result.err_lines) == 1, result.stderr
    line = result.err_lines[0]
    assert line.startswith("llm-fleet: error: "), line
    for needle in needles:
        assert needle in line, line
    return line


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return base_env(tmp_path)


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """A directory holding a stand-in `terraform`; put it (alone) first on PATH."""
    directory = tmp_path / "bin"
    directory.mkdir()
    script = directory / "terraform"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "fake_terraform.py"}" "$@"\n', encoding="utf-8")
    script.chmod(0o755)
    return directory


GCP_ONLY = """\
project: llm-fleet
global: {domain: api.example.com, hosted_zone: example.com}
state: {backend: s3, bucket: llm-fleet-cli-test-state, region: us-east-1}
gcp: {project: llm-fleet-cli-test}
regions:
  - {cloud: gcp, region: asia-southeast1, gpu_type: l4, min_replicas: 1, max_replicas: 2}
  - {cloud: gcp, region: europe-west4, gpu_type: l4, min_replicas: 1, max_replicas: 2, canary: true}
"""


@pytest.fixture
def gcp_only_fleet(tmp_path: Path) -> Path:
    path = tmp_path / "gcp-only.yaml"
    path.write_text(GCP_ONLY, encoding="utf-8")
    return path


@pytest.fixture
def offline_adc(tmp_path: Path) -> Path:
    """Application Default Credentials that google.auth loads without the network."""
    path = tmp_path / "adc.json"
    path.write_text(
        '{"type": "authorized_user", "client_id": "x.apps.googleusercontent.com", '
        '"client_secret": "s", "refresh_token": "r"}',
        encoding="utf-8",
    )
    return path


AWS_ONLY = """\
project: llm-fleet
global: {domain: api.example.com, hosted_zone: example.com}
state: {backend: s3, bucket: llm-fleet-cli-test-state, region: us-east-1}
regions:
  - {cloud: aws, region: us-west-2, gpu_type: a10g, min_replicas: 1, max_replicas: 2, on_demand_base: 1}
"""


@pytest.fixture
def aws_only_fleet(tmp_path: Path) -> Path:
    path = tmp_path / "aws-only.yaml"
    path.write_text(AWS_ONLY, encoding="utf-8")
    return path


def run_with_terminal_stdin(*args: str, env: dict[str, str], answers: str, timeout: float = 120) -> Result:
    """Run the script with a pseudo-terminal as stdin (so it may ask) and `answers` typed ahead."""
    import pty

    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [str(SCRIPT), *args],
            cwd=REPO,
            env=env,
            stdin=slave,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        os.close(slave)
        slave = -1
        os.write(master, answers.encode())
        out, err = proc.communicate(timeout=timeout)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    return Result(proc.returncode, out, err)
