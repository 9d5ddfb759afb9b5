"""Engine kill: readiness drops at once, the supervisor restarts vLLM, readiness returns.

Runs last among the engine tests (module order) because it restarts the session engine."""

from __future__ import annotations

import signal

import httpx
import psutil
import pytest

from devkit.proc import http_status, wait_until
from tests.service.conftest import ENGINE_START_TIMEOUT_S, PROBE_INTERVAL_S
from tests.service.helpers import METRICS_TOKEN, Gateway, metric_value

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def engine_process(gateway: Gateway) -> psutil.Process:
    for child in psutil.Process(gateway.process.pid).children():
        if "vllm.entrypoints.openai.api_server" in " ".join(child.cmdline()):
            return child
    raise AssertionError("no supervised vLLM process under the gateway")


def test_engine_kill_restarts(supervised: Gateway) -> None:
    assert supervised.health().status_code == 200
    before = supervised.health().json()["restarts"]
    victim = engine_process(supervised)
    victim.send_signal(signal.SIGKILL)

    wait_until(lambda: http_status(supervised.url + "/health/ready") == 503, PROBE_INTERVAL_S + 2, "readiness 503")
    assert supervised.health().json()["engine"] in {"dead", "restarting", "starting", "warming"}

    supervised.wait_ready(ENGINE_START_TIMEOUT_S)
    body = supervised.health().json()
    assert body["restarts"] == before + 1
    assert engine_process(supervised).pid != victim.pid
    metrics = httpx.get(supervised.url + "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}).text
    assert metric_value(metrics, "llm_gateway_engine_restarts_total") == before + 1
