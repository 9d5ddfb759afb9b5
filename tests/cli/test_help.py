"""`llm-fleet --help` and every command's help, through the installed console script."""

from __future__ import annotations

import pytest

from tests.cli.conftest import SCRIPT, run_cli

COMMANDS = ("check", "preflight", "plan", "deploy", "destroy", "status", "smoke", "cost", "chat", "demo", "bench")
FLEET_COMMANDS = tuple(c for c in COMMANDS if c not in ("demo", "bench"))  # demo runs the repository's own file
OVERRIDES = ("check", "preflight", "plan", "deploy", "cost")  # --model / --quantization apply to the fleet


def _flat(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


def test_the_console_script_is_installed() -> None:
    assert SCRIPT.is_file(), "pip install -e . installs [project.scripts] llm-fleet"


def test_root_help_lists_every_command_and_the_quick_start(env: dict[str, str]) -> None:
    result = run_cli("--help", env=env)
    assert result.code == 0, result
    text = _flat(result.stdout)
    assert "Usage: llm-fleet [OPTIONS] COMMAND [ARGS]..." in text
    for command in COMMANDS:
        assert f" {command} " in text, command
    assert "Quick start: llm-fleet check; llm-fleet deploy; llm-fleet status; llm-fleet chat." in text
    assert "--install-completion" in text
    assert "--show-completion" in text


def test_no_command_prints_the_help(env: dict[str, str]) -> None:
    result = run_cli(env=env)
    assert result.code == 0
    assert "Usage: llm-fleet" in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str, env: dict[str, str]) -> None:
    result = run_cli(command, "--help", env=env)
    assert result.code == 0, result
    assert result.stderr == ""
    text = _flat(result.stdout)
    assert f"Usage: llm-fleet {command} [OPTIONS]" in text
    assert f"Example: llm-fleet {command}" in text
    if command in FLEET_COMMANDS:
        assert "--file -f" in text
        assert "[default: regions.yaml]" in text
    if command in OVERRIDES:
        assert "--model" in text
        assert "--quantization" in text


def test_version(env: dict[str, str]) -> None:
    result = run_cli("--version", env=env)
    assert result.code == 0
    assert result.stdout.startswith("llm-fleet 0.")


def test_shell_completion_script(env: dict[str, str]) -> None:
    result = run_cli("--show-completion", "bash", env=env)
    assert result.code == 0, result
    assert "_LLM_FLEET_COMPLETE=complete_bash" in result.stdout
    assert "complete -o default -F _llm_fleet_completion llm-fleet" in result.stdout


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("llm-fleet de", "1", ["deploy", "destroy", "demo"]),
        ("llm-fleet deploy aws-", "2", ["aws-us-west-2", "aws-eu-central-1"]),  # from regions.yaml
        ("llm-fleet check --quantization ", "3", ["int8", "fp8", "none"]),
    ],
)
def test_completion_answers(words: str, cword: str, expected: list[str], env: dict[str, str]) -> None:
    env = env | {"_LLM_FLEET_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": cword}
    result = run_cli(env=env)
    assert result.code == 0, result
    assert result.stdout.split() == expected
