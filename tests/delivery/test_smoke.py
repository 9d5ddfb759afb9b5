"""`smoke` against a real gateway over real TLS, through the official OpenAI SDK.

The gateway is `python -m service` attached (`--engine-url`) to the session's vLLM
(tests/plugins/engine.py, shared with the service tier); a TLS proxy with a certificate from
a test CA stands in for the load balancer's HTTPS listener.
"""

from __future__ import annotations

import io
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from devkit.proc import free_port
from scripts.ops import smoke
from tests.delivery.conftest import ROOT
from tests.delivery.tls import TestCa, TlsProxy
from tests.service.helpers import API_KEY, SERVED, Gateway, start_gateway

pytestmark = [pytest.mark.engine, pytest.mark.slow]

GATEWAY_READY_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class TlsSite:
    ca: TestCa
    good: TlsProxy  # certificate for 127.0.0.1 and localhost
    wrong_name: TlsProxy  # certificate for another name only
    untrusted: TlsProxy  # certificate from a CA the client does not trust
    keys: Path


@pytest.fixture(scope="module")
def attached_gateway(engine_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("smoke-gateway")
    gateway = start_gateway(
        tmp,
        ["--engine-url", engine_url, "--probe-interval-s", "1", "--probe-timeout-s", "60"],
        name="smoke",
    )
    try:
        gateway.wait_ready(GATEWAY_READY_TIMEOUT_S)
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="module")
def site(attached_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsSite]:
    tmp = tmp_path_factory.mktemp("smoke-tls")
    ca = TestCa(tmp)
    good = ca.issue("good", ["localhost", "127.0.0.1"])
    wrong = ca.issue("wrong-name", ["us-west-2.api.example.com"])
    (tmp / "rogue").mkdir()
    rogue = TestCa(tmp / "rogue", "rogue CA").issue("untrusted", ["localhost", "127.0.0.1"])
    keys = tmp / "api-key"
    keys.write_text(f"# smoke key\n\n{API_KEY}\n", encoding="utf-8")
    with (
        TlsProxy(good, attached_gateway.port) as good_proxy,
        TlsProxy(wrong, attached_gateway.port) as wrong_proxy,
        TlsProxy(rogue, attached_gateway.port) as rogue_proxy,
    ):
        yield TlsSite(ca, good_proxy, wrong_proxy, rogue_proxy, keys)


@dataclass
class Recording:
    """The injected factory: the real SDK client, with the arguments it was built from."""

    calls: list[tuple[str, str, ssl.SSLContext, float]]

    def __call__(self, base_url: str, api_key: str, context: ssl.SSLContext, timeout_s: float) -> openai.OpenAI:
        self.calls.append((base_url, api_key, context, timeout_s))
        return smoke.openai_client(base_url, api_key, context, timeout_s)


def run(site: TlsSite, *endpoints: str, extra: tuple[str, ...] = ()) -> tuple[int, list[dict[str, Any]], Recording]:
    out = io.StringIO()
    recording = Recording([])
    argv = ["--file", str(ROOT / "regions.yaml"), "--api-key-file", str(site.keys), "--ca-bundle", str(site.ca.bundle)]
    argv += [f"--endpoint={e}" for e in endpoints] + ["--model", SERVED, "--json", *extra]
    rc = smoke.main(argv, client_factory=recording, out=out)
    return rc, json.loads(out.getvalue()), recording


def test_endpoints_pass_over_tls(site: TlsSite) -> None:
    by_ip, by_name = site.good.url, f"https://localhost:{site.good.port}"
    rc, results, recording = run(site, by_ip, by_name)
    assert rc == 0, results
    assert [r["url"] for r in results] == [by_ip, by_name]
    for r in results:
        assert r["ok"] is True
        assert r["tls_version"] in ("TLSv1.2", "TLSv1.3")
        assert 28 <= r["cert_days_left"] <= 30
        assert r["models"] == [SERVED]
        assert r["completion_tokens"] >= 1
        assert r["answer"]
        assert 0 < r["ttft_s"] <= r["total_s"]
    # The SDK was built per endpoint with the key from the file and the verifying context.
    assert [c[0] for c in recording.calls] == [by_ip + "/v1", by_name + "/v1"]
    assert {c[1] for c in recording.calls} == {API_KEY}
    assert all(c[2].verify_mode == ssl.CERT_REQUIRED and c[2].check_hostname for c in recording.calls)


def test_certificate_problems_fail_that_endpoint_only(site: TlsSite) -> None:
    rc, results, recording = run(site, site.wrong_name.url, site.untrusted.url, site.good.url)
    assert rc == 1
    wrong, untrusted, good = results
    assert not wrong["ok"]
    assert "certificate verify failed" in wrong["error"]
    assert "127.0.0.1" in wrong["error"]  # the name it does not cover
    assert not untrusted["ok"]
    assert "certificate verify failed" in untrusted["error"]
    assert good["ok"], good
    assert len(recording.calls) == 1  # no API call where TLS already failed


def test_wrong_key_and_unknown_model_fail(site: TlsSite, tmp_path: Path) -> None:
    wrong_key = tmp_path / "wrong"
    wrong_key.write_text("sk-not-a-key\n", encoding="utf-8")
    out = io.StringIO()
    argv = ["--endpoint", site.good.url, "--api-key-file", str(wrong_key), "--ca-bundle", str(site.ca.bundle)]
    assert smoke.main([*argv, "--model", SERVED, "--json"], out=out) == 1
    (result,) = json.loads(out.getvalue())
    assert result["error"].startswith("HTTP 401"), result
    rc, (result,), _ = run(site, site.good.url, extra=("--model", "qwen2.5-7b-instruct"))
    assert rc == 1
    assert result["error"] == "model 'qwen2.5-7b-instruct' not served (serves: tiny)"


def test_refused_connection_is_reported(site: TlsSite) -> None:
    rc, (result,), _ = run(site, f"https://127.0.0.1:{free_port()}")
    assert rc == 1
    assert result["error"].startswith("connection failed:"), result


def test_table(site: TlsSite) -> None:
    out = io.StringIO()
    argv = ["--endpoint", site.good.url, "--endpoint", site.wrong_name.url, "--api-key-file", str(site.keys)]
    rc = smoke.main([*argv, "--ca-bundle", str(site.ca.bundle), "--model", SERVED], out=out)
    assert rc == 1
    lines = out.getvalue().splitlines()
    assert lines[0].split()[:4] == ["endpoint", "url", "tls", "cert"]
    assert lines[2].startswith("127.0.0.1")
    assert lines[2].rstrip().endswith("ok")
    assert "FAIL: TLS: certificate verify failed" in lines[3]
