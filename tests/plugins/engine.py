"""The session's supervised gateway and the one vLLM (tiny model) it supervises.

Shared by the service tier (API, errors, drain, restart tests) and the delivery tier (the
smoke tool against a TLS endpoint), so the engine starts once per session.
"""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import pytest

from devkit.proc import free_port
from tests.service.helpers import TINY_MODEL, Gateway, start_gateway

ENGINE_START_TIMEOUT_S = 420.0
PROBE_INTERVAL_S = 1.0


@pytest.fixture(scope="session")
def supervised(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The session's gateway and the one vLLM it supervises."""
    if not (TINY_MODEL / "config.json").exists():
        pytest.fail(f"tiny model missing at {TINY_MODEL}: run `make setup`")
    tmp = tmp_path_factory.mktemp("supervised")
    engine_port = free_port()
    gateway = start_gateway(
        tmp,
        [
            "--model",
            str(TINY_MODEL),
            "--max-model-len",
            "4096",
            "--max-tokens-cap",
            "512",
            "--engine-args=--enforce-eager",  # no torch.compile: the tiny model starts in seconds
            "--engine-port",
            str(engine_port),
            "--engine-log-file",
            str(tmp / "engine.log"),
            "--probe-interval-s",
            str(PROBE_INTERVAL_S),
            "--probe-timeout-s",
            "20",
            "--restart-backoff-s",
            "0.5",
            "--drain-serve-s",
            "0",
            "--drain-finish-s",
            "10",
        ],
        name="supervised",
    )
    gateway.engine_url = f"http://127.0.0.1:{engine_port}"
    try:
        gateway.wait_ready(ENGINE_START_TIMEOUT_S)
        yield gateway
    finally:
        engines = [
            child
            for child in psutil.Process(gateway.process.pid).children(recursive=True)
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
        ]
        gateway.stop(drain=True)  # serve window 0: the drain stops vLLM and exits 0
        _, alive = psutil.wait_procs(engines, timeout=10)
        for leftover in alive:
            leftover.kill()
        engine_log = (tmp / "engine.log").read_text(errors="replace")[-3000:]
        assert gateway.process.returncode == 0, gateway.log_tail() + engine_log
        assert not alive, f"engine processes outlived the gateway: {[p.pid for p in alive]}"


@pytest.fixture(scope="session")
def engine_url(supervised: Gateway) -> str:
    assert supervised.engine_url is not None
    return supervised.engine_url
