"""Intent routing end to end: two pools, each a real vLLM engine (the tiny test model
under a different served name); every query must reach the engine of its pool."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from service.intent import Intent
from service.pools import ModelNotFoundError, Pool, PoolRouter

from .conftest import free_port

pytestmark = [pytest.mark.engine, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TINY_MODEL = ROOT / ".cache" / "tiny-model"
ENGINE_READY_TIMEOUT_S = 420.0


def _start_engine(served_name: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "OMP_NUM_THREADS": "1"}
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--model",
                str(TINY_MODEL),
                "--served-model-name",
                served_name,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--max-model-len",
                "1024",
                "--enforce-eager",  # no torch.compile: start-up is import time only
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: stopped with its workers
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def two_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """served name -> base URL of a running engine; both start in parallel, once."""
    if not (TINY_MODEL / "config.json").exists():
        pytest.fail(f"tiny model missing at {TINY_MODEL}: run `make setup`")
    logs = tmp_path_factory.mktemp("engines")
    names = ("tiny-general", "tiny-coder")
    ports = {name: free_port() for name in names}
    procs = {name: _start_engine(name, ports[name], logs / f"{name}.log") for name in names}
    try:
        deadline = time.monotonic() + ENGINE_READY_TIMEOUT_S
        pending = set(names)
        while pending:
            for name in sorted(pending):
                if procs[name].poll() is not None:
                    tail = (logs / f"{name}.log").read_text(errors="replace")[-3000:]
                    pytest.fail(f"engine {name} exited with {procs[name].returncode}:\n{tail}")
                try:
                    if httpx.get(f"http://127.0.0.1:{ports[name]}/v1/models", timeout=2).status_code == 200:
                        pending.discard(name)
                except httpx.HTTPError:
                    pass
            if pending and time.monotonic() > deadline:
                pytest.fail(f"engines not ready after {ENGINE_READY_TIMEOUT_S:.0f} s: {sorted(pending)}")
            if pending:
                time.sleep(1)
        yield {name: f"http://127.0.0.1:{ports[name]}" for name in names}
    finally:
        for proc in procs.values():
            _stop(proc)


@pytest.fixture
def router(two_engines: dict[str, str]) -> PoolRouter:
    return PoolRouter(
        [
            Pool("general", "tiny-general", frozenset({Intent.GENERAL, Intent.MATH}), two_engines["tiny-general"]),
            Pool("code", "tiny-coder", frozenset({Intent.CODE}), two_engines["tiny-coder"]),
        ]
    )


QUERIES = [
    ("Write a Rust function that parses a CSV line.", "tiny-coder"),
    ("这段代码为什么报错：print(undefined_var)", "tiny-coder"),
    ("What is 12 * 12?", "tiny-general"),
    ("Recommend a good book about the Roman empire.", "tiny-general"),
    ("推荐几部好看的电影", "tiny-general"),
]


@pytest.mark.parametrize(("text", "served"), QUERIES)
def test_each_query_reaches_its_pools_engine(router: PoolRouter, text: str, served: str) -> None:
    decision = router.route("auto", text)
    assert decision.model == served
    assert decision.pool.url is not None
    with openai.OpenAI(api_key="unused", base_url=decision.pool.url + "/v1", max_retries=0, timeout=120) as client:
        reply = client.chat.completions.create(
            model=decision.model, messages=[{"role": "user", "content": text}], max_tokens=4, temperature=0
        )
    assert reply.model == served
    assert reply.choices[0].finish_reason in ("stop", "length")


def test_pools_are_distinct_engines(router: PoolRouter) -> None:
    """The other pool's engine does not serve this name: reaching it would be a 404."""
    code_pool = router.route("tiny-coder", "anything").pool
    general_pool = router.route("tiny-general", "anything").pool
    assert code_pool.url != general_pool.url
    wrong = openai.OpenAI(api_key="unused", base_url=f"{general_pool.url}/v1", max_retries=0)
    with wrong, pytest.raises(openai.NotFoundError):
        wrong.chat.completions.create(model="tiny-coder", messages=[{"role": "user", "content": "hi"}], max_tokens=1)
    with pytest.raises(ModelNotFoundError):
        router.route("tiny-missing", "hi")
