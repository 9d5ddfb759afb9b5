"""Drain under load: SIGTERM, an AWS spot notice and rebalance recommendation (IMDSv2), a GCP
preemption (metadata server). Gateways attach to the session engine; the engine is real."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import openai
import pytest

from tests.service.helpers import API_KEY, SERVED, Gateway, wait_for
from tests.service.metadata_server import metadata_server

pytestmark = [pytest.mark.engine, pytest.mark.slow]

CLIENTS = 16
SERVE_S = 8.0
# Long enough that every client is still generating when the serve window closes.
MAX_TOKENS = 1000
STREAMING = 4  # of the CLIENTS; streams cost the (single-process) test client far more CPU


def _one_request(client: openai.OpenAI, index: int, start: threading.Barrier) -> int:
    """A long generation, streaming for the first STREAMING indexes. Returns the tokens received."""
    start.wait(30)
    if index < STREAMING:
        stream = client.chat.completions.create(
            model=SERVED,
            messages=[{"role": "user", "content": f"story {index}"}],
            max_tokens=MAX_TOKENS,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        chunks = [chunk for chunk in stream if chunk.choices and chunk.choices[0].delta.content is not None]
        assert chunks, "empty stream"
        return len(chunks)
    completion = client.completions.create(
        model=SERVED, prompt=f"story {index}", max_tokens=MAX_TOKENS, extra_body={"ignore_eos": True}
    )
    assert completion.usage is not None
    assert completion.usage.completion_tokens == MAX_TOKENS
    return completion.usage.completion_tokens


def _drain_under_load(gateway: Gateway, trigger: Callable[[], None]) -> None:
    """Bounds only keep the test finite; detection and window timings are the bench's business.

    Health polls and the serve-window request use one persistent connection: the test process
    also runs the 16 clients, and on a loaded machine new connections are what starves first.
    """
    gateway.wait_ready(60)
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=API_KEY, max_retries=0, timeout=120)
    headers = {"authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as probe, ThreadPoolExecutor(CLIENTS) as pool:
        start = threading.Barrier(CLIENTS)
        futures: list[Future[int]] = [pool.submit(_one_request, client, i, start) for i in range(CLIENTS)]
        wait_for(lambda: probe.get("/health/ready").json()["in_flight"] >= CLIENTS, 90, f"{CLIENTS} requests in flight")
        trigger()
        wait_for(lambda: probe.get("/health/ready").status_code == 503, 10, "readiness 503", interval_s=0.02)

        # Inside the serve window the load balancer may still send traffic: it is admitted and served
        # (admission is decided on arrival; a rejecting gateway answers 503).
        served = probe.post("/v1/completions", json={"model": SERVED, "prompt": "late but welcome", "max_tokens": 1})
        assert served.status_code == 200, served.text
        body = probe.get("/health/ready").json()
        assert body["ready"] is False
        assert body["status"] == "draining"
        assert probe.get("/health/live").status_code == 200

        wait_for(lambda: probe.get("/health/ready").json()["drain"] == "rejecting", SERVE_S + 10, "the reject phase")
        rejected = probe.post("/v1/completions", json={"model": SERVED, "prompt": "too late", "max_tokens": 1})
        assert rejected.status_code == 503
        assert rejected.headers["retry-after"] == "5"
        assert rejected.json()["error"]["code"] == "draining"

        tokens = [future.result(timeout=120) for future in futures]  # every in-flight request completes
    assert all(count >= 1 for count in tokens)
    assert gateway.process.wait(60) == 0, gateway.log_tail()


def _attached_with_watchers(attach: Callable[..., Gateway], metadata_url: str, name: str) -> Gateway:
    return attach(
        "--drain-serve-s",
        str(SERVE_S),
        "--drain-finish-s",
        "60",
        "--gcp-drain-serve-s",
        str(SERVE_S),
        "--gcp-drain-finish-s",
        "60",
        "--watch-aws",
        "--aws-metadata-url",
        metadata_url,
        "--aws-poll-interval-s",
        "0.5",
        "--watch-gcp",
        "--gcp-metadata-url",
        metadata_url,
        name=name,
    )


def test_drain_on_sigterm(attach: Callable[..., Gateway]) -> None:
    gateway = attach("--drain-serve-s", str(SERVE_S), "--drain-finish-s", "60", name="sigterm")
    _drain_under_load(gateway, lambda: gateway.process.send_signal(signal.SIGTERM))


@pytest.mark.parametrize("notice", ["spot", "rebalance"])
def test_drain_on_aws_notice(attach: Callable[..., Gateway], notice: str) -> None:
    with metadata_server() as (url, state):
        gateway = _attached_with_watchers(attach, url, f"aws-{notice}")
        event = state.spot if notice == "spot" else state.rebalance
        _drain_under_load(gateway, event.set)
        assert state.token_requests >= 1
        assert state.unauthorised == 0


def test_drain_on_gcp_preemption(attach: Callable[..., Gateway]) -> None:
    with metadata_server() as (url, state):
        gateway = _attached_with_watchers(attach, url, "gcp")
        _drain_under_load(gateway, state.preempted.set)
