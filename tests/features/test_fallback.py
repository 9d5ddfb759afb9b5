"""Timeout fallback: deadline from settings or header, cached answer on timeout, typed error."""

from __future__ import annotations

import asyncio

import pytest

from service.config.features import CacheSettings, FallbackSettings
from service.pipeline.cache import ResponseCache, cache_policy
from service.pipeline.fallback import (
    InvalidTimeoutHeaderError,
    RequestTimeoutError,
    request_deadline,
    run_with_fallback,
)

BODY = {"model": "m", "messages": [{"role": "user", "content": "2+2?"}], "temperature": 0}
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
}


def test_deadline_comes_from_settings_or_a_bounded_header() -> None:
    settings = FallbackSettings(default_timeout_s=30, min_timeout_s=0.5, max_timeout_s=60)
    assert request_deadline({}, settings) == 30
    assert request_deadline({"X-Request-Timeout": "12.5"}, settings) == 12.5
    assert request_deadline({"x-request-timeout": "600"}, settings) == 60
    assert request_deadline({"x-request-timeout": "0.01"}, settings) == 0.5
    assert request_deadline({"x-request-timeout": " "}, settings) == 30


@pytest.mark.parametrize("value", ["soon", "-1", "0", "nan", "inf"])
def test_bad_deadline_header_is_one_clear_line(value: str) -> None:
    with pytest.raises(InvalidTimeoutHeaderError) as err:
        request_deadline({"x-request-timeout": value}, FallbackSettings())
    assert str(err.value) == f"x-request-timeout: must be a number of seconds between 0.1 and 300, got {value!r}"


def test_fallback_settings_reject_inconsistent_bounds() -> None:
    with pytest.raises(ValueError, match="min_timeout_s <= default_timeout_s <= max_timeout_s"):
        FallbackSettings(default_timeout_s=500)


def test_fresh_answer_within_the_deadline() -> None:
    async def fast() -> str:
        await asyncio.sleep(0)
        return "fresh"

    outcome = asyncio.run(run_with_fallback(fast(), deadline_s=1, cache=ResponseCache(CacheSettings()), key="k"))
    assert outcome.value == "fresh"
    assert not outcome.fallback


def test_timeout_without_cached_answer_raises_and_cancels_the_work() -> None:
    cancelled = asyncio.Event()

    async def slow() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    async def scenario() -> None:
        with pytest.raises(RequestTimeoutError) as err:
            await run_with_fallback(slow(), deadline_s=0.05, cache=ResponseCache(CacheSettings()), key="k")
        assert err.value.deadline_s == 0.05
        assert err.value.code == "timeout"
        assert "did not answer within 0.05 s" in str(err.value)
        assert cancelled.is_set()

    asyncio.run(scenario())


def test_the_works_own_timeout_error_is_not_mistaken_for_the_deadline() -> None:
    async def failing() -> str:
        raise TimeoutError("upstream connect timeout")

    with pytest.raises(TimeoutError, match="upstream connect timeout"):
        asyncio.run(run_with_fallback(failing(), deadline_s=5))


def test_timeout_falls_back_to_the_memory_tier() -> None:
    settings = CacheSettings()
    cache = ResponseCache(settings)
    # The client asked for a fresh answer (no-cache): no lookup before, but a fallback after.
    policy = cache_policy("chat", BODY, {"cache-control": "no-cache"}, settings)
    assert policy.key is not None
    assert not policy.lookup

    async def scenario() -> None:
        await cache.put(policy.key or "", ANSWER)
        outcome = await run_with_fallback(asyncio.sleep(30, "late"), deadline_s=0.05, cache=cache, key=policy.key)
        assert outcome.fallback
        assert outcome.value is None
        assert outcome.cached is not None
        assert outcome.cached.body["choices"][0]["message"]["content"] == "4"

    asyncio.run(scenario())


@pytest.mark.redis
def test_timeout_falls_back_to_an_answer_another_instance_cached(redis_url: str) -> None:
    settings = CacheSettings(redis_url=redis_url)
    key = cache_policy("chat", BODY, {}, settings).key
    assert key is not None

    async def scenario() -> None:
        other, this = ResponseCache.from_settings(settings), ResponseCache.from_settings(settings)
        try:
            await other.put(key, ANSWER)
            outcome = await run_with_fallback(asyncio.sleep(30, "late"), deadline_s=0.05, cache=this, key=key)
            assert outcome.fallback
            assert this.stats.redis_hits == 1
            with pytest.raises(RequestTimeoutError):
                await run_with_fallback(asyncio.sleep(30), deadline_s=0.05, cache=this, key="unknown")
        finally:
            await other.aclose()
            await this.aclose()

    asyncio.run(scenario())
