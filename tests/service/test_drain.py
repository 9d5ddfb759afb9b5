"""Drain under load: SIGTERM, an AWS spot notice and rebalance recommendation (IMDSv2), a GCP
preemption (metadata server). Gateways attach to the session engine; the engine is real."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable

import httpx
import openai
import pytest

from tests.service.helpers import API_KEY, SERVED, Gateway, wait_for
from tests.service.metadata_server import metadata_server

pytestmark = [pytest.mark.engine, pytest.mark.slow]

CLIENTS = 16
SERVE_S = 10.0
# Long enough that every client is still generating when the serve window closes.
MAX_TOKENS = 3000
# Requests far longer than the serve window plus scheduling noise on a loaded machine.
LONG = ("--max-tokens-cap", str(MAX_TOKENS))
STREAMING = 2  # of the CLIENTS; streams cost the (single-process) test client far more CPU


async def _one_request(client: openai.AsyncOpenAI, index: int) -> int:
    """A long generation, streaming for the first STREAMING indexes. Returns the tokens received."""
    if index < STREAMING:
        stream = await client.chat.completions.create(
            model=SERVED,
            messages=[{"role": "user", "content": f"story {index}"}],
            max_tokens=MAX_TOKENS,
            stream=True,
            extra_body={"ignore_eos": True},
        )
        chunks = [chunk async for chunk in stream if chunk.choices and chunk.choices[0].delta.content is not None]
        assert chunks, "empty stream"
        return len(chunks)
    completion = await client.completions.create(
        model=SERVED, prompt=f"story {index}", max_tokens=MAX_TOKENS, extra_body={"ignore_eos": True}
    )
    assert completion.usage is not None
    assert completion.usage.completion_tokens == MAX_TOKENS
    return completion.usage.completion_tokens


def _start_clients(gateway: Gateway) -> tuple[threading.Thread, list[int | BaseException]]:
    """CLIENTS concurrent requests from one asyncio loop in a thread (they really start together)."""
    outcomes: list[int | BaseException] = []

    async def run() -> None:
        async with openai.AsyncOpenAI(
            base_url=gateway.url + "/v1", api_key=API_KEY, max_retries=0, timeout=180
        ) as client:
            # The SDK builds its models on first use: pay that before the burst.
            await client.completions.create(model=SERVED, prompt="warm", max_tokens=1)
            stream = await client.chat.completions.create(
                model=SERVED, messages=[{"role": "user", "content": "w"}], max_tokens=1, stream=True
            )
            _ = [chunk async for chunk in stream]
            tasks = [_one_request(client, index) for index in range(CLIENTS)]
            outcomes.extend(await asyncio.gather(*tasks, return_exceptions=True))

    thread = threading.Thread(target=asyncio.run, args=(run(),), name="drain-clients", daemon=True)
    thread.start()
    return thread, outcomes


def _drain_under_load(gateway: Gateway, trigger: Callable[[], None]) -> None:
    """Bounds only keep the test finite; detection and window timings are the bench's business.

    Health polls and the in-window requests use one persistent connection: on a loaded machine
    new connections from the test process are what starves first.
    """
    gateway.wait_ready(60)
    headers = {"authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=60) as probe:
        clients, outcomes = _start_clients(gateway)
        wait_for(lambda: probe.get("/health/ready").json()["in_flight"] >= CLIENTS, 90, f"{CLIENTS} requests in flight")
        trigger()
        # Readiness 503 *because of the drain* (a slow probe on this loaded engine also gives 503).
        wait_for(lambda: probe.get("/health/ready").json()["drain"] == "draining", 30, "the drain", interval_s=0.02)
        assert probe.get("/health/ready").status_code == 503

        # Inside the serve window the load balancer may still send traffic: it is admitted and served
        # (admission is decided on arrival; a rejecting gateway answers 503).
        served = probe.post("/v1/completions", json={"model": SERVED, "prompt": "late but welcome", "max_tokens": 1})
        assert served.status_code == 200, served.text
        body = probe.get("/health/ready").json()
        assert body["ready"] is False
        assert body["status"] == "draining"
        assert probe.get("/health/live").status_code == 200

        wait_for(lambda: probe.get("/health/ready").json()["drain"] == "rejecting", SERVE_S + 30, "the reject phase")
        rejected = probe.post("/v1/completions", json={"model": SERVED, "prompt": "too late", "max_tokens": 1})
        assert rejected.status_code == 503
        assert rejected.headers["retry-after"] == "5"
        assert rejected.json()["error"]["code"] == "draining"

        clients.join(180)  # every request that was in flight completes
    assert not clients.is_alive()
    assert len(outcomes) == CLIENTS
    failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert not failures, failures
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
        *LONG,
        name=name,
    )


def test_drain_on_sigterm(attach: Callable[..., Gateway]) -> None:
    gateway = attach("--drain-serve-s", str(SERVE_S), "--drain-finish-s", "60", *LONG, name="sigterm")
    _drain_under_load(gateway, lambda: gateway.process.send_signal(signal.SIGTERM))


@pytest.mark.parametrize("notice", ["spot", "rebalance"])
def test_drain_on_aws_notice(attach: Callable[..., Gateway], notice: str) -> None:
    with metadata_server() as metadata:
        gateway = _attached_with_watchers(attach, metadata.url, f"aws-{notice}")
        _drain_under_load(gateway, lambda: metadata.trigger(notice))
        stats = metadata.stats()
    assert stats["token_requests"] >= 1
    assert stats["unauthorised"] == 0


def test_drain_on_gcp_preemption(attach: Callable[..., Gateway]) -> None:
    with metadata_server() as metadata:
        gateway = _attached_with_watchers(attach, metadata.url, "gcp")
        _drain_under_load(gateway, lambda: metadata.trigger("preempt"))
