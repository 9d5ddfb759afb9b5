"""Cache, timeout fallback, rate limits and languages through the gateway over HTTP, with the
official openai SDK, against the session's real vLLM; per instance and through a real Redis."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import openai
import pytest

from devkit.proc import free_port, wait_until
from tests.service.features_helpers import feature_env, feature_gateway, gateway_metric, sdk
from tests.service.helpers import SERVED, Gateway

pytestmark = [pytest.mark.engine, pytest.mark.slow]

# Long enough that 0.1 s can never see its end (the tiny model on a CPU: tens of ms per token).
LONG_TOKENS = 400
TINY_DEADLINE = {"x-request-timeout": "0.1"}
TOKENS_PER_MINUTE = 500
TOO_MANY_TOKENS = 600  # more than a whole minute's bucket: refused, and costs nothing


def chat(content: str, **extra: object) -> dict[str, object]:
    return {"model": SERVED, "messages": [{"role": "user", "content": content}], **extra}


@pytest.fixture(scope="module")
def memory_gw(engine_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Features per instance (no Redis): cache on, default limits, no language instruction."""
    env = feature_env(fallback__min_timeout_s=0.001)
    with feature_gateway(tmp_path_factory.mktemp("memory"), engine_url, name="memory", env=env) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def limited_gw(engine_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = feature_env(rate_limit__requests_per_minute=3, rate_limit__tokens_per_minute=TOKENS_PER_MINUTE)
    with feature_gateway(tmp_path_factory.mktemp("limited"), engine_url, name="limited", env=env) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def redis_pair(
    engine_url: str, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Gateway]]:
    """Two instances of one region sharing the session's redis-server."""
    env = feature_env(rate_limit__requests_per_minute=4)
    tmp = tmp_path_factory.mktemp("region")
    with (
        feature_gateway(tmp, engine_url, "--redis-url", redis_server, name="region-a", env=env) as a,
        feature_gateway(tmp, engine_url, "--redis-url", redis_server, name="region-b", env=env) as b,
    ):
        yield a, b


# --- response cache -------------------------------------------------------------------


def test_deterministic_request_is_a_miss_then_a_hit(memory_gw: Gateway) -> None:
    client = sdk(memory_gw)
    body = chat("Cache me: the first hit.", temperature=0, max_tokens=8)
    first = client.chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
    second = client.chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
    assert first.headers["x-cache"] == "miss"
    assert second.headers["x-cache"] == "hit"
    assert first.headers["x-model-used"] == second.headers["x-model-used"] == SERVED
    assert second.parse().model_dump() == first.parse().model_dump()
    assert gateway_metric(memory_gw, "llm_gateway_cache_lookups_total", result="hit") >= 1
    assert gateway_metric(memory_gw, "llm_gateway_cache_hit_ratio") > 0


def test_sampling_requests_are_not_cached(memory_gw: Gateway) -> None:
    client = sdk(memory_gw)
    body = chat("Sampled, never cached.", temperature=0.9, max_tokens=4)
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
        assert raw.headers["x-cache"] == "miss"


def test_a_stream_is_answered_from_the_cache_as_sse(memory_gw: Gateway) -> None:
    client = sdk(memory_gw)
    body = chat("Cache me, then stream me.", temperature=0, max_tokens=12)
    stored = client.chat.completions.create(**body)  # type: ignore[call-overload]
    raw = client.chat.completions.with_raw_response.create(  # type: ignore[call-overload]
        **body, stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers["x-cache"] == "hit"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == stored.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == stored.usage.completion_tokens
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [stored.choices[0].finish_reason]


def test_completions_are_cached_too(memory_gw: Gateway) -> None:
    client = sdk(memory_gw)
    first = client.completions.with_raw_response.create(
        model=SERVED, prompt="Cache a prompt", max_tokens=5, temperature=0
    )
    second = client.completions.with_raw_response.create(
        model=SERVED, prompt="Cache a prompt", max_tokens=5, temperature=0
    )
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert second.parse().choices[0].text == first.parse().choices[0].text


def test_cache_control_no_cache_goes_to_the_engine(memory_gw: Gateway) -> None:
    client = sdk(memory_gw)
    body = chat("Fresh, please.", temperature=0, max_tokens=4)
    client.chat.completions.create(**body)  # type: ignore[call-overload]
    before = gateway_metric(memory_gw, "llm_gateway_engine_requests_total", route="/v1/chat/completions")
    raw = client.chat.completions.with_raw_response.create(  # type: ignore[call-overload]
        **body, extra_headers={"cache-control": "no-cache"}
    )
    after = gateway_metric(memory_gw, "llm_gateway_engine_requests_total", route="/v1/chat/completions")
    assert raw.headers["x-cache"] == "miss"
    assert after == before + 1


# --- timeout fallback -----------------------------------------------------------------


class PausableProxy:
    """A TCP proxy on 127.0.0.1 in front of the engine; while `paused()` no byte goes through,
    in either direction, so a request sent then waits on its engine for as long as the test likes."""

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        assert parts.hostname is not None
        assert parts.port is not None
        self._target = (parts.hostname, parts.port)
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._flowing: asyncio.Event | None = None
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> PausableProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @contextmanager
    def paused(self) -> Iterator[None]:
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.clear)
        try:
            yield
        finally:
            self._loop.call_soon_threadsafe(self._flowing.set)

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)

    async def _stop(self) -> None:
        assert self._server is not None
        assert self._flowing is not None
        self._flowing.set()
        self._server.close()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            engine_reader, engine_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pump(reader, engine_writer), self._pump(engine_reader, writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.close()


@pytest.fixture(scope="module")
def fallback_pair(
    engine_url: str, redis_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Gateway, PausableProxy]]:
    """Two instances of one region (one Redis): `slow` reaches the engine through a proxy the
    test can pause, `fast` directly."""
    tmp = tmp_path_factory.mktemp("fallback")
    with (
        PausableProxy(engine_url) as proxy,
        feature_gateway(tmp, proxy.url, "--redis-url", redis_server, name="fallback-slow") as slow,
        feature_gateway(tmp, engine_url, "--redis-url", redis_server, name="fallback-fast") as fast,
    ):
        yield slow, fast, proxy


def test_deadline_falls_back_to_an_answer_cached_meanwhile(
    fallback_pair: tuple[Gateway, Gateway, PausableProxy], redis_url: str
) -> None:
    """A request whose engine does not answer within its deadline gets the answer another
    instance stored for the same request meanwhile (`x-cache: fallback`), as JSON or as a stream."""
    slow, fast, proxy = fallback_pair
    assert redis_url  # an empty Redis: nothing is cached yet
    for stream in (False, True):
        body = chat(f"Answered elsewhere meanwhile ({stream=}).", temperature=0, max_tokens=8)
        misses = gateway_metric(slow, "llm_gateway_cache_lookups_total", result="miss")
        with proxy.paused(), ThreadPoolExecutor(1) as pool:
            late = pool.submit(
                sdk(slow).chat.completions.with_raw_response.create,  # type: ignore[arg-type]
                **body,
                stream=stream,
                extra_headers={"x-request-timeout": "3"},
            )
            wait_until(
                lambda misses=misses: gateway_metric(slow, "llm_gateway_cache_lookups_total", result="miss") > misses,
                30,
                "the lookup that misses",
            )
            stored = sdk(fast).chat.completions.create(**body)  # type: ignore[call-overload]
            raw = late.result(timeout=60)
        assert raw.headers["x-cache"] == "fallback"
        if stream:
            text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        else:
            text = raw.parse().choices[0].message.content
        assert text == stored.choices[0].message.content
    assert gateway_metric(slow, "llm_gateway_deadline_exceeded_total", outcome="fallback") == 2


@pytest.mark.parametrize("temperature", [0, 0.8], ids=["nothing-cached", "not-cacheable"])
def test_deadline_without_a_cached_answer_is_504(memory_gw: Gateway, temperature: float) -> None:
    client = sdk(memory_gw)
    body = chat(f"Never answered in time ({temperature}).", temperature=temperature, max_tokens=LONG_TOKENS)
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(  # type: ignore[call-overload]
            **body, extra_body={"ignore_eos": True}, extra_headers=TINY_DEADLINE
        )
    assert err.value.status_code == 504
    error = err.value.response.json()["error"]
    assert error["code"] == "timeout"
    assert "within 0.1 s" in error["message"]
    assert "x-request-timeout" in error["message"]


def test_a_bad_deadline_header_is_one_clear_400(memory_gw: Gateway) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        sdk(memory_gw).chat.completions.create(  # type: ignore[call-overload]
            **chat("hi", max_tokens=1), extra_headers={"x-request-timeout": "soon"}
        )
    assert err.value.response.json()["error"]["message"] == (
        "x-request-timeout: must be a number of seconds between 0.001 and 300, got 'soon'"
    )


# --- rate limits ----------------------------------------------------------------------


def test_rate_limit_per_key_is_429_with_retry_after(limited_gw: Gateway) -> None:
    client = sdk(limited_gw)
    ok = [client.chat.completions.with_raw_response.create(**chat(f"r{i}", max_tokens=1)) for i in range(3)]  # type: ignore[call-overload]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in ok] == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(**chat("one too many", max_tokens=1))  # type: ignore[call-overload]
    assert int(err.value.response.headers["retry-after"]) >= 1
    assert err.value.response.json()["error"]["code"] == "rate_limit_exceeded"
    assert gateway_metric(limited_gw, "llm_gateway_rate_limited_total", limited_by="requests") >= 1
    # Another key has its own buckets (and unknown keys never reach the limiter: 401).
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=limited_gw.url + "/v1", api_key="sk-wrong", max_retries=0).models.list()


def test_a_request_larger_than_a_minute_of_tokens_is_refused(limited_gw: Gateway) -> None:
    with pytest.raises(openai.RateLimitError) as err:
        sdk(limited_gw).chat.completions.create(**chat("hi", max_tokens=TOO_MANY_TOKENS))  # type: ignore[call-overload]
    assert err.value.response.json()["error"]["code"] == "request_too_large"
    assert "retry-after" not in err.value.response.headers


# --- two instances, one Redis ---------------------------------------------------------


def test_an_answer_cached_by_one_instance_is_a_hit_on_the_other(
    redis_pair: tuple[Gateway, Gateway], redis_url: str
) -> None:
    a, b = redis_pair
    body = chat("Shared across the region.", temperature=0, max_tokens=8)
    first = sdk(a).chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
    second = sdk(b).chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("miss", "hit")
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert gateway_metric(b, "llm_gateway_cache_lookups_total", result="hit", tier="redis") >= 1
    assert redis_url


def test_a_keys_rate_limit_is_shared_by_the_instances(redis_pair: tuple[Gateway, Gateway], redis_url: str) -> None:
    a, b = redis_pair
    assert redis_url  # flushed: both buckets start full
    for gateway in (a, b, a, b):
        sdk(gateway).chat.completions.create(**chat("count me", max_tokens=1))  # type: ignore[call-overload]
    for gateway in (a, b):
        with pytest.raises(openai.RateLimitError) as err:
            sdk(gateway).chat.completions.create(**chat("over", max_tokens=1))  # type: ignore[call-overload]
        assert int(err.value.response.headers["retry-after"]) >= 1


# --- errors and languages -------------------------------------------------------------


def test_unknown_model_is_404_model_not_found(memory_gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        sdk(memory_gw).chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert err.value.response.json()["error"]["code"] == "model_not_found"


def test_auto_is_routed_to_the_local_engine(memory_gw: Gateway) -> None:
    raw = sdk(memory_gw).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hello"}], max_tokens=2
    )
    assert raw.headers["x-model-used"] == SERVED
    assert raw.parse().model == SERVED


ZH = "请介绍一下长城的历史。"


def _prompt_tokens(gateway: Gateway, messages: list[dict[str, str]]) -> int:
    completion = sdk(gateway).chat.completions.create(model=SERVED, messages=messages, max_tokens=1)  # type: ignore[arg-type]
    assert completion.usage is not None
    return completion.usage.prompt_tokens


def test_language_instruction_on_and_off(memory_gw: Gateway, engine_url: str, tmp_path: Path) -> None:
    env = feature_env(language__instruction_enabled=True)
    user = [{"role": "user", "content": ZH}]
    own_system = [{"role": "system", "content": "You are terse."}, *user]
    with feature_gateway(tmp_path, engine_url, name="multilingual", env=env) as on:
        # The engine sees a longer prompt: the gateway added the "answer in Chinese" system message...
        assert _prompt_tokens(on, user) > _prompt_tokens(memory_gw, user)
        # ...but never on top of the client's own system message.
        assert _prompt_tokens(on, own_system) == _prompt_tokens(memory_gw, own_system)
        assert gateway_metric(on, "llm_gateway_request_language_total", language="zh") >= 2
