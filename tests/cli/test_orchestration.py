"""plan / deploy / destroy orchestration against a stand-in terraform (tests/cli/fake_terraform.py).

Fast and deterministic: the order (canary first, destroy backwards), the confirmation with the
plan's counts (a pseudo-terminal as stdin), a refusal, the first failure stopping the run with
one line naming the stack and terraform's error, the results table, plan's exit statuses and
OpenTofu. The fleet is GCP-only with `--backend local`, so the prerequisites are an offline
Application Default Credentials file and the stand-in binary; `--no-synth` uses stack
directories written here (the real synth and terraform run in test_moto_lifecycle.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.conftest import Result, run_cli, run_with_terminal_stdin

CANARY = "gcp-europe-west4"
OTHER = "gcp-asia-southeast1"


@pytest.fixture
def setup(
    tmp_path: Path, fake_bin: Path, gcp_only_fleet: Path, offline_adc: Path, env: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    out = tmp_path / "out"
    for stack in (CANARY, OTHER):
        (out / "stacks" / stack).mkdir(parents=True)
        (out / "stacks" / stack / "cdk.tf.json").write_text("{}", encoding="utf-8")
    record = tmp_path / "applied.txt"
    env = env | {
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "GOOGLE_APPLICATION_CREDENTIALS": str(offline_adc),
        "FAKE_TF_RECORD": str(record),
    }
    common = ["--file", str(gcp_only_fleet), "--backend", "local", "--out", str(out), "--no-synth"]
    return env, common


def _applied(env: dict[str, str]) -> list[str]:
    path = Path(env["FAKE_TF_RECORD"])
    return path.read_text(encoding="utf-8").split() if path.exists() else []


def _rows(result: Result) -> dict[str, list[str]]:
    """The results table: stack -> its cells."""
    rows = {}
    for line in result.stdout.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").split("│")]
        if cells and cells[0] in (CANARY, OTHER):
            rows[cells[0]] = cells
    return rows


def test_deploy_in_order_with_a_table(setup: tuple[dict[str, str], list[str]]) -> None:
    env, common = setup
    result = run_cli("deploy", OTHER, CANARY, *common, "--auto-approve", env=env)  # any order on the command line
    assert result.code == 0, result
    assert _applied(env) == [CANARY, OTHER]  # the canary first
    rows = _rows(result)
    assert rows[CANARY][1] == "applied"
    assert rows[CANARY][3] == f"https://{CANARY}.api.example.com"
    assert float(rows[OTHER][2]) >= 0
    assert f"[1/2] {CANARY}: apply (+2 ~0 ±1 -0)" in result.stderr  # progress per stack
    assert f"✓ [2/2] {OTHER}: applied" in result.stderr
    assert "terraform 1.11.4; local state in" in result.stderr


def test_deploy_stops_at_the_first_failure_with_one_line(setup: tuple[dict[str, str], list[str]]) -> None:
    env, common = setup
    result = run_cli("deploy", CANARY, OTHER, *common, "--auto-approve", env=env | {"FAKE_TF_FAIL_APPLY": CANARY})
    assert result.code == 1
    assert _applied(env) == []
    errors = [line for line in result.err_lines if line.startswith("llm-fleet: error:")]
    assert errors == [result.err_lines[-1]]
    assert errors[0].startswith(
        f"llm-fleet: error: {CANARY}: terraform apply failed: Error: creating fake thing (a): operation error Fake: "
        "CreateThing, StatusCode: 400, QuotaExceeded: The account's quota for fake things is 0. (log: "
    )
    assert "Traceback" not in result.stderr
    rows = _rows(result)
    assert rows[CANARY][1] == "failed"
    assert rows[OTHER][1:] == ["skipped", "-", "-"]


def test_deploy_asks_with_the_plan_and_stops_when_refused(setup: tuple[dict[str, str], list[str]]) -> None:
    env, common = setup
    result = run_with_terminal_stdin("deploy", CANARY, OTHER, *common, env=env, answers="y\nn\n")
    assert result.code == 1, result
    assert _applied(env) == [CANARY]
    assert f"{CANARY}: 2 to create, 0 to update, 1 to replace, 0 to destroy" in result.stderr
    assert "-/+ fake_thing.c" in result.stderr
    assert "+ fake_thing.a" in result.stderr
    assert f"Apply {CANARY}? [y/n] (n):" in result.stderr
    assert result.err_lines[-1] == (
        f"llm-fleet: error: {OTHER}: not approved; it and the stacks after it were left as they are"
    )
    rows = _rows(result)
    assert rows[CANARY][1] == "applied"
    assert rows[OTHER][1] == "declined"


def test_destroy_runs_backwards_and_shows_what_goes(setup: tuple[dict[str, str], list[str]]) -> None:
    env, common = setup
    result = run_with_terminal_stdin("destroy", CANARY, OTHER, *common, env=env, answers="y\ny\n")
    assert result.code == 0, result
    assert _applied(env) == [OTHER, CANARY]
    assert f"{OTHER}: 0 to create, 0 to update, 0 to replace, 3 to destroy" in result.stderr
    assert "- fake_thing.b" in result.stderr
    assert f"destroying {OTHER} -> {CANARY}" in result.stderr
    assert {row[1] for row in _rows(result).values()} == {"destroyed"}


def test_plan_exit_codes(setup: tuple[dict[str, str], list[str]]) -> None:
    env, common = setup
    result = run_cli("plan", CANARY, OTHER, *common, env=env)
    assert result.code == 2, result  # changes
    assert f"{CANARY}: 2 to create, 0 to update, 1 to replace, 0 to destroy" in result.stdout
    assert "+ fake_thing.b" in result.stdout
    assert "data.fake_lookup" not in result.stdout  # reads are not changes
    assert _applied(env) == []
    result = run_cli("plan", CANARY, OTHER, *common, env=env | {"FAKE_TF_FAIL_PLAN": OTHER})
    assert result.code == 1  # an error wins over changes
    assert result.err_lines[-1].startswith(
        f"llm-fleet: error: {OTHER}: terraform plan failed: Error: No valid credential sources found: "
        "Please see the provider's docs."
    )
    assert _rows(result)[CANARY][1] == "changes"  # the other stacks are still planned


def test_opentofu_when_that_is_what_is_installed(setup: tuple[dict[str, str], list[str]], tmp_path: Path) -> None:
    env, common = setup
    fake_tofu_dir = tmp_path / "tofu-bin"
    fake_tofu_dir.mkdir()
    terraform = Path(env["PATH"].split(":")[0]) / "terraform"
    (fake_tofu_dir / "tofu").symlink_to(terraform)
    system = ":".join(p for p in os.environ["PATH"].split(":") if not (Path(p) / "terraform").exists())
    result = run_cli(
        "deploy", CANARY, *common, "-y", env=env | {"PATH": f"{fake_tofu_dir}:{system}", "FAKE_TF_VERSION": "1.10.2"}
    )
    assert result.code == 0, result
    assert "(tofu 1.10.2; local state in" in result.stderr


def test_no_synth_needs_the_synthesized_stacks(setup: tuple[dict[str, str], list[str]], tmp_path: Path) -> None:
    env, common = setup
    common = [*common]
    common[common.index("--out") + 1] = str(tmp_path / "nothing-here")
    result = run_cli("deploy", CANARY, *common, "-y", env=env)
    assert result.code == 2
    assert result.err_lines[-1].startswith("llm-fleet: error: --no-synth: ")
    assert "cdk.tf.json not found" in result.err_lines[-1]
