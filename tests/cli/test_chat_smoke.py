"""`llm-fleet smoke` and `llm-fleet chat` against a local stand-in that speaks the OpenAI API.

The stand-in (tests/cli/standin.py) is a plain HTTP server on 127.0.0.1, so these run without an
engine; the CLI underneath is the real one: the official openai SDK, the smoke tool's checks
(scripts.ops.smoke) over plain http, streaming read chunk by chunk. The same commands against
a real gateway and vLLM: test_engine_gateway.py (marker `engine`).
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import SCRIPT, assert_one_line_error, base_env, run_cli
from tests.cli.standin import API_KEY, MODEL, StandIn, serve


@pytest.fixture
def standin() -> Iterator[StandIn]:
    with serve() as state:
        yield state


@pytest.fixture
def keyed_env(tmp_path: Path) -> dict[str, str]:
    return base_env(tmp_path, LLM_FLEET_API_KEY=API_KEY)


def _cells(stdout: str, first: str) -> list[str]:
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if cells[0] == first:
            return cells
    raise AssertionError(f"no row {first!r} in:\n{stdout}")


def test_smoke_passes_through_a_plain_http_endpoint(standin: StandIn, keyed_env: dict[str, str]) -> None:
    result = run_cli("smoke", "--endpoint", standin.url, "--model", MODEL, env=keyed_env)
    assert result.code == 0, result
    row = _cells(result.stdout, "127.0.0.1")
    assert row[1] == standin.url
    assert row[2] == "none (http)"
    assert row[4] == MODEL
    assert row[-1] == "ok"
    assert row[-2].startswith("echo: Reply with one wo")
    request = standin.requests[-1]
    assert request["stream"] is True
    assert request["max_tokens"] == 16


def test_smoke_json(standin: StandIn, keyed_env: dict[str, str]) -> None:
    import json

    result = run_cli("smoke", "-e", standin.url + "/v1", "--model", MODEL, "--json", env=keyed_env)  # a base URL
    assert result.code == 0, result
    [doc] = json.loads(result.stdout)
    assert doc["ok"] is True
    assert doc["models"] == [MODEL]
    assert doc["completion_tokens"] == 8  # the stand-in counts words
    assert doc["ttft_s"] > 0


def test_smoke_failures_are_a_row_and_one_line(standin: StandIn, keyed_env: dict[str, str]) -> None:
    result = run_cli("smoke", "--endpoint", standin.url, "--model", MODEL, env=keyed_env | {"LLM_FLEET_API_KEY": "no"})
    assert result.code == 1
    assert _cells(result.stdout, "127.0.0.1")[-1].startswith("FAIL: HTTP 401")
    assert result.err_lines[-1] == (
        "llm-fleet: error: smoke: 1 of 1 endpoint(s) failed; first: 127.0.0.1: HTTP 401: Error code: 401 - "
        "invalid API key"
    )
    result = run_cli("smoke", "--endpoint", standin.url, "--model", "other", env=keyed_env)
    assert result.code == 1
    assert "model 'other' not served (serves: standin-model)" in result.err_lines[-1]


def test_smoke_bad_endpoint_is_one_line(keyed_env: dict[str, str]) -> None:
    result = run_cli("smoke", "--endpoint", "ftp://127.0.0.1", "--model", MODEL, env=keyed_env)
    assert_one_line_error(result, "--endpoint 'ftp://127.0.0.1': must be an http:// or https:// URL", code=2)


def test_chat_piped_keeps_the_conversation(standin: StandIn, tmp_path: Path, keyed_env: dict[str, str]) -> None:
    result = run_cli(
        "chat",
        "--endpoint",
        standin.url,
        "--system",
        "Be brief.",
        env=keyed_env,
        cwd=tmp_path,  # no fleet file: the model is the first the endpoint serves
        stdin="hello there\n\nwhat next\n",
    )
    assert result.code == 0, result
    assert result.stdout == "echo: hello there\necho: what next\n"
    assert result.stderr == ""
    assert standin.requests[-1]["model"] == MODEL
    assert standin.requests[-1]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": "echo: hello there"},
        {"role": "user", "content": "what next"},
    ]


def test_chat_streams_tokens_as_they_arrive(standin: StandIn, tmp_path: Path, keyed_env: dict[str, str]) -> None:
    """The first word is on stdout while the stand-in still holds the rest of the answer."""
    standin.hold_after_first = True
    proc = subprocess.Popen(
        [str(SCRIPT), "chat", "--endpoint", standin.url, "--model", MODEL],
        cwd=tmp_path,
        env=keyed_env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    chunks: queue.Queue[bytes] = queue.Queue()
    fd = proc.stdout.fileno()
    reader = threading.Thread(target=lambda: [chunks.put(b) for b in iter(lambda: os.read(fd, 4096), b"")], daemon=True)
    reader.start()
    proc.stdin.write(b"one two three\n")
    proc.stdin.flush()
    seen = b""
    deadline = time.monotonic() + 60
    while b"echo:" not in seen and time.monotonic() < deadline:
        try:
            seen += chunks.get(timeout=1)
        except queue.Empty:
            continue
    assert seen == b"echo:"
    assert standin.holding.is_set()
    assert not standin.release.is_set()
    standin.release.set()
    proc.stdin.close()
    assert proc.wait(timeout=60) == 0
    reader.join(timeout=10)
    while not chunks.empty():
        seen += chunks.get()
    assert seen == b"echo: one two three\n"


def test_chat_errors_are_one_line(standin: StandIn, tmp_path: Path, keyed_env: dict[str, str]) -> None:
    result = run_cli("chat", "-e", standin.url, env=keyed_env | {"LLM_FLEET_API_KEY": "wrong"}, stdin="hi\n")
    assert_one_line_error(result, f"{standin.url}/v1: HTTP 401: invalid API key", code=1)
    result = run_cli("chat", "-e", standin.url, "--model", "nope", env=keyed_env, stdin="hi\n")
    assert_one_line_error(result, "model 'nope' is not served (serves: standin-model); pass --model", code=1)
    result = run_cli("chat", "-e", "http://127.0.0.1:9", "--model", MODEL, env=keyed_env, stdin="hi\n")
    assert_one_line_error(result, "http://127.0.0.1:9/v1: connection failed", code=1)
    result = run_cli("chat", "-e", "localhost:8000", env=keyed_env, stdin="hi\n")
    assert_one_line_error(result, "--endpoint 'localhost:8000': give an http:// or https:// origin", code=2)


def test_chat_default_endpoint_is_the_fleets_global_name(keyed_env: dict[str, str]) -> None:
    """With regions.yaml and no --endpoint: https://api.example.com (unreachable here: one line)."""
    result = run_cli("chat", "--timeout", "5", env=keyed_env, stdin="hi\n")
    assert_one_line_error(result, "https://api.example.com/v1: connection failed", code=1)


def test_chat_on_a_terminal(standin: StandIn, tmp_path: Path, keyed_env: dict[str, str]) -> None:
    """stdin a terminal: the prompt loop with its commands (/reset, /exit)."""
    from tests.cli.conftest import run_with_terminal_stdin

    result = run_with_terminal_stdin(
        "chat", "-e", standin.url, "--model", MODEL, env=keyed_env, answers="hello\n/reset\nagain\n/exit\n"
    )
    assert result.code == 0, result
    assert result.stdout == "echo: hello\necho: again\n"
    assert f"chat with {MODEL} at {standin.url}/v1" in result.stderr
    assert "conversation cleared" in result.stderr
    assert standin.requests[-1]["messages"] == [{"role": "user", "content": "again"}]  # /reset forgot "hello"
