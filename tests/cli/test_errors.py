"""Every user mistake and missing prerequisite is one line and a non-zero exit; never a traceback.

Run through the installed script. The missing-prerequisite checks run before anything is
synthesized, so none of these tests runs cdktf or a cloud call.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.cli.conftest import assert_one_line_error, base_env, run_cli

REGIONS = "regions.yaml"


def test_bad_fleet_file_is_the_fleet_files_own_lines(tmp_path: Path, env: dict[str, str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (Path(__file__).resolve().parents[2] / REGIONS).read_text().replace("gpu_type: a10g", "gpu_type: a100x"),
        encoding="utf-8",
    )
    for command in ("check", "deploy", "status", "cost"):
        result = run_cli(command, "--file", str(bad), env=env)
        assert result.code == 2, (command, result)
        assert "Traceback" not in result.stderr
        assert result.err_lines[0].startswith(f"{bad}: regions[0].gpu_type: unknown gpu type 'a100x'"), result.stderr
        assert result.err_lines[-1] == f"{bad}: invalid fleet file (1 problem)"


def test_missing_fleet_file(tmp_path: Path, env: dict[str, str]) -> None:
    result = run_cli("check", env=env, cwd=tmp_path)  # no regions.yaml here
    assert result.code == 2
    assert result.err_lines == ["regions.yaml: file not found", "regions.yaml: invalid fleet file (1 problem)"]


def test_fleet_file_from_the_environment(tmp_path: Path, env: dict[str, str]) -> None:
    fleet = Path(__file__).resolve().parents[2] / REGIONS
    result = run_cli("check", env=env | {"LLM_FLEET_FILE": str(fleet)}, cwd=tmp_path)
    assert result.code == 0, result
    assert f"{fleet} (valid)" in result.stdout


def test_quantization_override_goes_through_the_fleet_validation(env: dict[str, str]) -> None:
    result = run_cli("check", "--quantization", "fp8", env=env)
    assert result.code == 2
    # regions.yaml has a T4 region (eu-central-1): fp8 needs Ada/Hopper
    assert (
        "regions.yaml with --quantization fp8: regions[1].gpu_type: 't4' cannot run fp8 models "
        "(model.quantization); aws GPUs that can: h100, l4, l40s"
    ) in result.err_lines
    assert "Traceback" not in result.stderr


def test_unknown_quantization_names_the_allowed_values(env: dict[str, str]) -> None:
    result = run_cli("deploy", "--quantization", "8bit", "--auto-approve", env=env)
    assert result.code == 2
    assert result.err_lines[0].startswith("regions.yaml with --quantization 8bit: model.quantization:")
    assert "int8" in result.err_lines[0]


def test_model_override_shows_in_the_summary(env: dict[str, str]) -> None:
    result = run_cli("check", "--model", "Qwen/Qwen2.5-3B-Instruct", "--quantization", "none", env=env)
    assert result.code == 0, result
    assert "Qwen/Qwen2.5-3B-Instruct (none; loads Qwen/Qwen2.5-3B-Instruct; served as qwen2.5-3b-instruct" in (
        result.stdout
    )


def test_unknown_stack(env: dict[str, str]) -> None:
    result = run_cli("deploy", "aws-us-west-3", "--auto-approve", env=env)
    assert_one_line_error(result, "unknown stack 'aws-us-west-3'", "bootstrap, aws-us-west-2", code=2)


def test_plan_errors_exit_1_because_2_means_changes(env: dict[str, str]) -> None:
    result = run_cli("plan", "aws-us-west-3", env=env)
    assert_one_line_error(result, "unknown stack 'aws-us-west-3'", code=1)
    result = run_cli("plan", "--no-such-flag", env=env)
    assert_one_line_error(result, "No such option: --no-such-flag", "llm-fleet plan --help", code=1)


def test_bad_flag(env: dict[str, str]) -> None:
    result = run_cli("deploy", "--no-such-flag", env=env)
    assert_one_line_error(result, "No such option: --no-such-flag", "(see: llm-fleet deploy --help)", code=2)
    result = run_cli("deploy", "--backend", "s3", env=env)
    assert_one_line_error(result, "--backend", code=2)


def test_deploy_without_a_terminal_needs_auto_approve(env: dict[str, str]) -> None:
    result = run_cli("deploy", env=env)  # stdin is a pipe
    assert_one_line_error(result, "stdin is not a terminal", "--auto-approve", code=2)
    result = run_cli("destroy", env=env)
    assert_one_line_error(result, "stdin is not a terminal", code=2)


def test_missing_terraform(tmp_path: Path, gcp_only_fleet: Path, offline_adc: Path, env: dict[str, str]) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = env | {"PATH": str(empty), "GOOGLE_APPLICATION_CREDENTIALS": str(offline_adc)}
    args = ("deploy", "--file", str(gcp_only_fleet), "--backend", "local", "gcp-asia-southeast1", "-y")
    result = run_cli(*args, env=env)
    line = assert_one_line_error(result, "neither terraform nor tofu is on PATH", "install Terraform >= 1.10", code=1)
    assert "OpenTofu" in line


def test_terraform_binary_flag_that_is_not_there(env: dict[str, str]) -> None:
    result = run_cli("plan", "--terraform-binary", "/nonexistent/terraform", env=env)
    assert_one_line_error(result, "--terraform-binary /nonexistent/terraform: not found", code=1)


def test_terraform_too_old(fake_bin: Path, gcp_only_fleet: Path, offline_adc: Path, env: dict[str, str]) -> None:
    env = env | {
        "PATH": f"{fake_bin}:{os.environ['PATH']}",
        "FAKE_TF_VERSION": "1.5.7",
        "GOOGLE_APPLICATION_CREDENTIALS": str(offline_adc),
    }
    result = run_cli("plan", "--file", str(gcp_only_fleet), "--backend", "local", "gcp-asia-southeast1", env=env)
    assert_one_line_error(result, "is terraform 1.5.7; the stacks need >= 1.10", code=1)


def test_missing_aws_credentials(aws_only_fleet: Path, env: dict[str, str]) -> None:
    """terraform is there (the real one); there are no AWS credentials at all: one line, exit 1."""
    result = run_cli("deploy", "--file", str(aws_only_fleet), "--auto-approve", env=env)
    line = assert_one_line_error(result, "no AWS credentials found", code=1)
    assert "AWS_PROFILE" in line
    assert "aws sso login" in line


def test_missing_google_credentials(gcp_only_fleet: Path, env: dict[str, str], fake_bin: Path) -> None:
    env = env | {"PATH": f"{fake_bin}:{os.environ['PATH']}"}
    args = ("deploy", "--file", str(gcp_only_fleet), "--backend", "local", "gcp-asia-southeast1", "-y")
    result = run_cli(*args, env=env)
    assert_one_line_error(result, "no Google credentials found", "gcloud auth application-default login", code=1)


def test_every_missing_prerequisite_is_its_own_line(tmp_path: Path, env: dict[str, str]) -> None:
    """No terraform, no AWS and no Google credentials (regions.yaml has AWS and GCP regions)."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = run_cli("deploy", "--auto-approve", env=env | {"PATH": str(empty)})
    assert result.code == 1
    assert "Traceback" not in result.stderr
    assert [line.split(":", 2)[2].strip()[:24] for line in result.err_lines] == [
        "neither terraform nor to",
        "no AWS credentials found",
        "no Google credentials fo",
    ]
    assert all(line.startswith("llm-fleet: error: ") for line in result.err_lines)


def test_status_without_credentials(env: dict[str, str]) -> None:
    result = run_cli("status", env=env)
    assert_one_line_error(result, "no AWS credentials found", code=1)


def test_smoke_and_chat_need_a_key(env: dict[str, str]) -> None:
    result = run_cli("smoke", env=env)
    assert_one_line_error(result, "no API key", "LLM_FLEET_API_KEY or OPENAI_API_KEY", code=2)
    result = run_cli("chat", "--endpoint", "http://127.0.0.1:9", env=env)
    assert_one_line_error(result, "no API key", code=2)


def test_chat_without_fleet_file_needs_an_endpoint(tmp_path: Path) -> None:
    env = base_env(tmp_path, LLM_FLEET_API_KEY="k")
    result = run_cli("chat", env=env, cwd=tmp_path)
    assert_one_line_error(result, "--endpoint: required when there is no fleet file", code=2)


def test_offline_cost_needs_nothing(env: dict[str, str]) -> None:
    result = run_cli("cost", "--offline", env=env)
    assert result.code == 0, result
    assert "total" in result.stdout
    assert "saving against all on-demand" in result.stdout
    assert "offline: prices from prices-" in result.stderr
