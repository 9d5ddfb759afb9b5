"""Gateways with feature settings, attached to the session engine (tests/service/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai

from infra.boot import instance_contract
from infra.config import load_fleet
from tests.service.helpers import API_KEY, ATTACHED_ARGS, METRICS_TOKEN, Gateway, metric_value, start_gateway

ROUTING_ENV_PREFIX = "LLM_SERVICE_FEATURES__ROUTING__"


def routing_env(fleet_file: Path) -> dict[str, str]:
    """The routing part of the environment an instance of the fleet file's first region gets
    (its instance contract): the pools and the default model, as production renders them."""
    fleet = load_fleet(fleet_file)
    env = instance_contract(fleet, fleet.regions[0]).service.env()
    return {key: value for key, value in env.items() if key.startswith(ROUTING_ENV_PREFIX)}


GATEWAY_READY_TIMEOUT_S = 120.0
ENV_FEATURES = "LLM_SERVICE_FEATURES__"


def feature_env(**values: str | int | float | bool) -> dict[str, str]:
    """cache__ttl_s=5 -> {"LLM_SERVICE_FEATURES__CACHE__TTL_S": "5"}."""
    return {
        ENV_FEATURES + key.upper(): str(value).lower() if isinstance(value, bool) else str(value)
        for key, value in values.items()
    }


@contextmanager
def feature_gateway(
    tmp: Path, engine_url: str, *args: str, name: str, env: dict[str, str] | None = None
) -> Iterator[Gateway]:
    """An attached gateway (no supervision), ready; stopped on exit."""
    gateway = start_gateway(
        tmp,
        ["--engine-url", engine_url, *ATTACHED_ARGS, *args],
        name=name,
        env=env,
    )
    try:
        gateway.wait_ready(GATEWAY_READY_TIMEOUT_S)
        yield gateway
    finally:
        gateway.stop()


def sdk(gateway: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


def gateway_metric(gateway: Gateway, name: str, **labels: str) -> float:
    text = httpx.get(gateway.url + "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10).text
    return metric_value(text, name, **labels)
