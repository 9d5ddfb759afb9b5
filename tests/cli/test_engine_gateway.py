"""`llm-fleet smoke` and `chat` against a real gateway and vLLM (marker `engine`: one test).

The gateway is `python -m service` attached to the session's vLLM (tests/plugins/engine.py,
the tiny random model, shared with the service and delivery tiers), on plain http as a local
region's load balancer serves it. The answers are noise; the path is real: API key check,
the streaming relay, the official openai SDK in the installed `llm-fleet`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import base_env, run_cli
from tests.service.helpers import API_KEY, SERVED, start_gateway

pytestmark = [pytest.mark.engine, pytest.mark.slow]

GATEWAY_READY_TIMEOUT_S = 180.0


def test_smoke_and_chat_through_a_real_gateway(engine_url: str, tmp_path: Path) -> None:
    gateway = start_gateway(
        tmp_path, ["--engine-url", engine_url, "--probe-interval-s", "1", "--probe-timeout-s", "60"], name="cli"
    )
    try:
        gateway.wait_ready(GATEWAY_READY_TIMEOUT_S)
        url = f"http://127.0.0.1:{gateway.port}"
        env = base_env(tmp_path, LLM_FLEET_API_KEY=API_KEY)

        smoke = run_cli("smoke", "--endpoint", url, "--model", SERVED, "--timeout", "120", env=env, cwd=tmp_path)
        assert smoke.code == 0, smoke
        row = next(line for line in smoke.stdout.splitlines() if line.startswith("127.0.0.1"))
        assert row.rstrip().endswith("ok")
        assert "none (http)" in row

        chat = run_cli(
            "chat", "--endpoint", url, "--max-tokens", "8", "--timeout", "120", env=env, cwd=tmp_path, stdin="Hi\n"
        )
        assert chat.code == 0, chat  # the model: the first the gateway lists (no fleet file here)
        assert chat.stderr == ""
        assert chat.stdout.endswith("\n")

        wrong = run_cli("chat", "--endpoint", url, env=env | {"LLM_FLEET_API_KEY": "sk-wrong"}, stdin="Hi\n")
        assert wrong.code == 1
        assert wrong.stderr.startswith(f"llm-fleet: error: {url}/v1: HTTP 401")
    finally:
        gateway.stop()
