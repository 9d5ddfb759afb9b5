"""Cheap gateways attached to the session's supervised vLLM, and clients of that gateway.

The supervised gateway and its engine (`supervised`, `engine_url`) are in
tests/plugins/engine.py, shared with the delivery tier so the engine starts once per session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.plugins.engine import ENGINE_START_TIMEOUT_S, PROBE_INTERVAL_S
from tests.service.helpers import API_KEY, ATTACHED_ARGS, Gateway, start_gateway

__all__ = ["ENGINE_START_TIMEOUT_S", "PROBE_INTERVAL_S"]

AttachedFactory = Callable[..., Gateway]


@pytest.fixture
def attach(engine_url: str, tmp_path: Path) -> Iterator[AttachedFactory]:
    """Start gateways attached to the session engine (no supervision, ready in about a second)."""
    started: list[Gateway] = []

    def factory(*args: str, name: str = "attached", engine: str | None = None) -> Gateway:
        gateway = start_gateway(
            tmp_path,
            ["--engine-url", engine or engine_url, *ATTACHED_ARGS, *args],
            name=f"{name}-{len(started)}",
        )
        started.append(gateway)
        return gateway

    yield factory
    for gateway in started:
        gateway.stop()


@pytest.fixture(scope="session")
def client(supervised: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=supervised.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def raw(supervised: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=supervised.url, timeout=60, headers={"authorization": f"Bearer {API_KEY}"}) as http:
        yield http
