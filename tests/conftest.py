"""Session-wide test settings and fixtures shared by every tier.

`redis_server`: one real redis-server per session on a free loopback port (no
persistence), used by the feature units and by gateways sharing a region-wide tier.
Session fixtures that more than one tier uses are plugins (tests/plugins/), registered here
so that each heavy component starts once per session: the moto deployment of the AWS stacks
(infra and delivery tiers) and the supervised vLLM engine (service and delivery tiers).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from hypothesis import settings

from service.engine.process import free_port

# vLLM on CPU binds every engine's OpenMP threads to core 0 by default ("auto"); with
# several engines in one session (the shared engine, the resilience region, a restart)
# they starve each other on that core. Let the OS schedule them; every engine inherits this.
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")

pytest_plugins = ("tests.plugins.moto_fleet", "tests.plugins.engine")

# Deterministic property tests in CI: the same examples every run (no flaky red builds),
# no example database written into the checkout.
settings.register_profile("repo", derandomize=True, database=None, print_blob=True)
settings.load_profile("repo")

REDIS_START_TIMEOUT_S = 20.0


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a redis-server started for this session; stopped at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    try:
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    pytest.fail(f"redis-server did not start on port {port}: {out[-2000:]}")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture
def redis_url(redis_server: str) -> Iterator[str]:
    """The session's Redis, empty at the start of the test."""
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    yield redis_server
    client.close()


@pytest.fixture
def dead_redis_url() -> str:
    """A loopback port nothing listens on."""
    return f"redis://127.0.0.1:{free_port()}/0"
