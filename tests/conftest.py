"""Session-wide test settings and fixtures shared by every tier.

`redis_server`: one real redis-server per session on a free loopback port (no
persistence), used by the feature units and by gateways sharing a region-wide tier.
Session fixtures that more than one tier uses are plugins (tests/plugins/), registered here
so that each heavy component starts once per session: the moto deployment of the AWS stacks
(infra and delivery tiers) and the supervised vLLM engine (service and delivery tiers).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from hypothesis import settings

from devkit.proc import LocalError, free_port
from devkit.redis_server import local_redis

# vLLM on CPU binds every engine's OpenMP threads to core 0 by default ("auto"); with
# several engines in one session (the shared engine, the resilience region, a restart)
# they starve each other on that core. Let the OS schedule them; every engine inherits this.
os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")

pytest_plugins = ("tests.plugins.moto_fleet", "tests.plugins.engine")

# Deterministic property tests in CI: the same examples every run (no flaky red builds),
# no example database written into the checkout.
settings.register_profile("repo", derandomize=True, database=None, print_blob=True)
settings.load_profile("repo")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a redis-server started for this session; stopped at the end."""
    try:
        with local_redis(tmp_path_factory.mktemp("redis")) as url:
            yield url
    except LocalError as exc:
        pytest.fail(str(exc))


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
