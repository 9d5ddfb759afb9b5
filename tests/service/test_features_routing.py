"""Intent routing through the gateway across two pools served by real engines: the session's
vLLM serves the local pool (`tiny`: general and math), one extra vLLM serves `tiny-coder`
as a remote pool. The pools come from a fleet file through the instance contract's environment, like in production."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from devkit.proc import free_port, wait_until
from infra.config import DEFAULT_FLEET_FILE
from tests.service.features_helpers import feature_gateway, gateway_metric, routing_env, sdk
from tests.service.helpers import SERVED, TINY_MODEL, Gateway, metric_value

pytestmark = [pytest.mark.engine, pytest.mark.slow]

CODER = "tiny-coder"
ENGINE_READY_TIMEOUT_S = 420.0


@pytest.fixture(scope="module")
def coder_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The one extra engine of the session: the tiny model served as `tiny-coder`."""
    log = tmp_path_factory.mktemp("coder") / "engine.log"
    port = free_port()
    # One OpenMP thread: on a shared 2-core machine spinning OpenMP workers of two engines
    # starve each other (the tiny model needs no parallelism).
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1"}
    argv = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(TINY_MODEL),
        "--served-model-name",
        CODER,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--max-model-len",
        "1024",
        "--enforce-eager",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"{CODER} engine exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            return httpx.get(url + "/v1/models", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, ENGINE_READY_TIMEOUT_S, f"{CODER} engine at {url}", interval_s=1.0)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _fleet_with_pools(tmp: Path, *, code_url: str) -> Path:
    """The repository's fleet file plus two pools: the local engine and `tiny-coder` at `code_url`."""
    fleet = tmp / "regions.yaml"
    fleet.write_text(
        Path(DEFAULT_FLEET_FILE).read_text(encoding="utf-8")
        + f"""
routing:
  default_model: auto
  pools:
    - {{name: general, model: {SERVED}, intents: [general, math]}}
    - {{name: code, model: {CODER}, intents: [code], url: "{code_url}"}}
""",
        encoding="utf-8",
    )
    return fleet


@pytest.fixture(scope="module")
def routed(engine_url: str, coder_engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("routed")
    fleet = _fleet_with_pools(tmp, code_url=coder_engine)
    with feature_gateway(tmp, engine_url, name="routed", env=routing_env(fleet)) as gateway:
        yield gateway


def _coder_requests(coder_engine: str) -> float:
    text = httpx.get(coder_engine + "/metrics", timeout=10).text
    return metric_value(text, "http_requests_total", handler="/v1/chat/completions")


QUERIES = [
    ("Write a Rust function that parses a CSV line.", CODER),
    ("这段代码为什么报错：print(undefined_var)", CODER),
    ("用Java写一个单例模式，要线程安全的", CODER),
    ("What is 12 * 12?", SERVED),
    ("convert 72 degrees fahrenheit to celsius", SERVED),
    ("Recommend a laptop for programming under $1000.", SERVED),
    ("推荐几部好看的电影", SERVED),
]


@pytest.mark.parametrize(("text", "served_by"), QUERIES)
def test_each_query_reaches_its_pools_engine(routed: Gateway, coder_engine: str, text: str, served_by: str) -> None:
    before = _coder_requests(coder_engine)
    raw = sdk(routed).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": text}], max_tokens=3
    )
    completion = raw.parse()
    assert raw.headers["x-model-used"] == served_by
    assert completion.model == served_by  # written by the engine that answered
    # Only the coder engine is counted: the session engine also answers health probes.
    assert _coder_requests(coder_engine) - before == (1 if served_by == CODER else 0)


def test_an_explicit_model_goes_straight_to_its_pool(routed: Gateway, coder_engine: str) -> None:
    before = _coder_requests(coder_engine)
    raw = sdk(routed).chat.completions.with_raw_response.create(
        model=CODER, messages=[{"role": "user", "content": "Tell me about the Roman empire."}], max_tokens=2
    )
    assert raw.headers["x-model-used"] == CODER
    assert _coder_requests(coder_engine) == before + 1
    assert gateway_metric(routed, "llm_gateway_routing_decisions_total", pool="code", intent="explicit") >= 1
    assert gateway_metric(routed, "llm_gateway_routing_decisions_total", pool="code", intent="code") >= 1


def test_a_stream_from_the_remote_pool(routed: Gateway) -> None:
    stream = sdk(routed).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "```python\nprint(1)\n```"}], max_tokens=4, stream=True
    )
    chunks = list(stream)
    assert chunks
    assert {chunk.model for chunk in chunks} == {CODER}


def test_models_lists_the_pools_and_auto(routed: Gateway) -> None:
    assert {model.id for model in sdk(routed).models.list()} == {SERVED, CODER, "auto"}


def test_unknown_model_is_404(routed: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        sdk(routed).chat.completions.create(model="tiny-math", messages=[{"role": "user", "content": "1+1"}])
    error = err.value.response.json()["error"]
    assert error["code"] == "model_not_found"
    assert CODER in error["message"]


@pytest.fixture(scope="module")
def dead_pool(engine_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The code pool points at a port nothing listens on."""
    tmp = tmp_path_factory.mktemp("dead-pool")
    fleet = _fleet_with_pools(tmp, code_url=f"http://127.0.0.1:{free_port()}")
    with feature_gateway(tmp, engine_url, name="dead-pool", env=routing_env(fleet)) as gateway:
        yield gateway


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_unreachable_pool_is_a_retryable_503(dead_pool: Gateway, stream: bool) -> None:
    """Nothing reached the engine, so the answer says so: 503 + Retry-After (safe to resend),
    not the 502 of an engine that failed mid-request."""
    with pytest.raises(openai.InternalServerError) as err:
        sdk(dead_pool).chat.completions.create(
            model=CODER, messages=[{"role": "user", "content": "def f(): pass"}], max_tokens=2, stream=stream
        )
    assert err.value.status_code == 503
    assert err.value.response.headers["retry-after"] == "5"
    error = err.value.response.json()["error"]
    assert error["code"] == "engine_unavailable"
    assert "127.0.0.1" not in error["message"]  # the pool's address is the operator's business
    # The local pool is unaffected.
    answer = sdk(dead_pool).chat.completions.create(
        model=SERVED, messages=[{"role": "user", "content": "hi"}], max_tokens=1
    )
    assert answer.model == SERVED
