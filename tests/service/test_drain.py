"""Drain under load: SIGTERM, an AWS spot interruption notice (IMDSv2), a GCP preemption
(metadata server); an AWS rebalance recommendation is counted and drains nothing. Gateways
attach to the session engine; the engine is real.

Deterministic by design, on a slow or busy machine too:

- The load (CLIENTS openai-SDK clients, STREAMING of them streaming) runs in a process of its own
  (`tests.service.drain_clients`), so the test's health polls and late requests never queue behind
  the clients' stream parsing. Each request generates for about SECONDS at the pace measured just
  before (`ignore_eos`, `min_tokens`), so it is in flight when the trigger comes and done long
  before the finish window ends.
- HELD requests are admitted before the trigger with their bodies held back by the test; they keep
  the gateway in its finish phase for exactly as long as the reject phase takes to check, then
  are released and must complete: the end of the drain never races the test.
- A barrier waits until the gateway's own in-flight gauge counts every client and held request
  before the trigger; the gateway's drain accounting (in flight at the start of the drain and when
  rejecting began) is asserted, not inferred from client timings.
- The serve window (SERVE_S) is long against the milliseconds between seeing the drain and the
  in-window request on a kept-alive connection; FINISH_S only bounds a broken run.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from devkit.cloudmeta import cloud_stand_in as metadata_server
from devkit.proc import wait_until
from tests.service.helpers import API_KEY, METRICS_TOKEN, REPO, SERVED, Gateway, metric_value

pytestmark = [pytest.mark.engine, pytest.mark.slow]

CLIENTS = 16
STREAMING = 4
HELD = 2
HELD_TOKENS = 8
SECONDS = 12.0
SERVE_S = 5.0
FINISH_S = 120.0
TOKENS_CAP = 3000  # prompt + completion stay inside the session engine's 4096-token context
DRAIN_WINDOWS = ("--drain-serve-s", str(SERVE_S), "--drain-finish-s", str(FINISH_S))
CAP = ("--max-tokens-cap", str(TOKENS_CAP))
# The held requests are slow bodies on purpose: give them longer than the whole drain can take.
HELD_BODIES = ("--body-timeout-s", str(4 * FINISH_S))


class HeldRequest:
    """A completion sent with half its body: admitted (and in flight) now, completed on release."""

    def __init__(self, port: int, index: int) -> None:
        body = json.dumps({"model": SERVED, "prompt": f"held {index}", "max_tokens": HELD_TOKENS}).encode()
        half = len(body) // 2
        self._rest = body[half:]
        head = (
            f"POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nauthorization: Bearer {API_KEY}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        self._sock.sendall(head + body[:half])

    def complete(self) -> tuple[int, dict[str, Any]]:
        """Send the rest of the body; the status and JSON body of the answer."""
        self._sock.sendall(self._rest)
        parts = []
        while chunk := self._sock.recv(65536):
            parts.append(chunk)
        head, _, body = b"".join(parts).partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, json.loads(body)

    def close(self) -> None:
        self._sock.close()


@contextmanager
def _load(gateway: Gateway, tmp: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    out = tmp / f"load-{gateway.port}.json"
    argv = [sys.executable, "-m", "tests.service.drain_clients", gateway.url]
    argv += ["--clients", str(CLIENTS), "--streaming", str(STREAMING), "--seconds", str(SECONDS)]
    argv += ["--cap", str(TOKENS_CAP), "--out", str(out)]
    with (tmp / f"load-{gateway.port}.log").open("wb") as log:
        process = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process, out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _drain_under_load(gateway: Gateway, trigger: Callable[[], None], tmp: Path) -> None:
    """Bounds only keep a broken run finite; detection and window timings are the bench's business."""
    # Ready needs a warm-up generation on the shared session engine: generous on a loaded machine
    # (and long enough to ride out a restart of that engine by its supervisor).
    gateway.wait_ready(300)
    headers = {"authorization": f"Bearer {API_KEY}"}
    held: list[HeldRequest] = []
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=120) as probe, _load(gateway, tmp) as (load, out):

        def health() -> dict[str, Any]:
            body: dict[str, Any] = probe.get("/health/ready").json()
            return body

        started = out.with_name(out.name + ".started")
        wait_until(lambda: started.exists() or load.poll() is not None, 240, "the load's calibration round")
        assert load.poll() is None, (tmp / f"load-{gateway.port}.log").read_text()
        held = [HeldRequest(gateway.port, index) for index in range(HELD)]
        wait_until(lambda: health()["in_flight"] >= CLIENTS + HELD, 120, f"{CLIENTS + HELD} requests in flight")

        trigger()
        # Readiness 503 *because of the drain* (a slow probe on a loaded engine also gives 503).
        wait_until(lambda: health()["drain"] != "serving", 30, "the drain", interval_s=0.02)
        body = health()
        assert body["ready"] is False
        assert body["status"] == "draining", body
        assert body["drain_in_flight"]["at_start"] >= CLIENTS + HELD, body
        # Inside the serve window the load balancer may still send traffic: it is admitted and served.
        served = probe.post("/v1/completions", json={"model": SERVED, "prompt": "late but welcome", "max_tokens": 1})
        assert served.status_code == 200, served.text
        assert probe.get("/health/ready").status_code == 503
        assert probe.get("/health/live").status_code == 200

        # The held requests keep the gateway in its finish phase: this check cannot race the exit.
        wait_until(lambda: health()["drain"] == "rejecting", SERVE_S + 60, "the reject phase")
        rejected = probe.post("/v1/completions", json={"model": SERVED, "prompt": "too late", "max_tokens": 1})
        assert rejected.status_code == 503, rejected.text
        assert rejected.headers["retry-after"] == "5"
        assert rejected.json()["error"]["code"] == "draining"
        assert health()["drain_in_flight"]["at_reject"] >= HELD

        # Every request that started before readiness went 503 completes, in full.
        for request in held:
            status, answer = request.complete()
            assert status == 200, answer
            assert answer["usage"]["completion_tokens"] == HELD_TOKENS
        assert load.wait(FINISH_S) == 0, (tmp / f"load-{gateway.port}.log").read_text()
    for request in held:
        request.close()
    result = json.loads(out.read_text())
    assert result["outcomes"] == [result["tokens"]] * CLIENTS, result
    assert gateway.process.wait(60) == 0, gateway.log_tail()


def _attached_with_watchers(attach: Callable[..., Gateway], metadata_url: str, name: str) -> Gateway:
    return attach(
        *DRAIN_WINDOWS,
        "--gcp-drain-serve-s",
        str(SERVE_S),
        "--gcp-drain-finish-s",
        str(FINISH_S),
        "--watch-aws",
        "--aws-metadata-url",
        metadata_url,
        "--aws-poll-interval-s",
        "0.5",
        "--watch-gcp",
        "--gcp-metadata-url",
        metadata_url,
        *CAP,
        *HELD_BODIES,
        name=name,
    )


def test_drain_on_sigterm(attach: Callable[..., Gateway], tmp_path: Path) -> None:
    gateway = attach(*DRAIN_WINDOWS, *CAP, *HELD_BODIES, name="sigterm")
    _drain_under_load(gateway, lambda: gateway.process.send_signal(signal.SIGTERM), tmp_path)


def test_drain_on_aws_spot_notice(attach: Callable[..., Gateway], tmp_path: Path) -> None:
    with metadata_server() as metadata:
        gateway = _attached_with_watchers(attach, metadata.url, "aws-spot")
        _drain_under_load(gateway, lambda: metadata.trigger("spot"), tmp_path)
        stats = metadata.stats()
    assert stats["token_requests"] >= 1
    assert stats["unauthorised"] == 0


def test_rebalance_recommendation_is_counted_and_drains_nothing(attach: Callable[..., Gateway]) -> None:
    with metadata_server() as metadata:
        gateway = _attached_with_watchers(attach, metadata.url, "aws-rebalance")
        gateway.wait_ready(300)
        metadata.trigger("rebalance")
        headers = {"authorization": f"Bearer {METRICS_TOKEN}"}

        def counted() -> float:
            text = httpx.get(gateway.url + "/metrics", headers=headers, timeout=10).text
            return metric_value(text, "llm_gateway_rebalance_recommendations_total")

        wait_until(lambda: counted() == 1, 30, "the rebalance recommendation counted")
        body = httpx.get(gateway.url + "/health/ready", timeout=10).json()
        assert body["ready"] is True, body
        assert body["drain"] == "serving", body
        assert gateway.process.poll() is None
        gateway.stop()


def test_drain_on_gcp_preemption(attach: Callable[..., Gateway], tmp_path: Path) -> None:
    with metadata_server() as metadata:
        gateway = _attached_with_watchers(attach, metadata.url, "gcp")
        _drain_under_load(gateway, lambda: metadata.trigger("preempt"), tmp_path)
