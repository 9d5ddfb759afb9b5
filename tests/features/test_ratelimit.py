"""Rate limits per API key: per-instance buckets, region-wide buckets in a real Redis."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from service.config.features import RateLimitSettings
from service.pipeline.ratelimit import (
    Limits,
    MemoryRateLimiter,
    RateLimitDecision,
    RedisRateLimiter,
    estimate_tokens,
    key_id,
    rate_limiter_from_settings,
)

DEFAULT = Limits(requests_per_minute=100, tokens_per_minute=200_000)


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


async def _take(limiter: MemoryRateLimiter | RedisRateLimiter, key: str, n: int, tokens: int = 1) -> list[bool]:
    return [(await limiter.acquire(key, tokens)).allowed for _ in range(n)]


def test_default_is_100_requests_per_minute_then_429_with_retry_after() -> None:
    clock = FakeClock()
    configured = rate_limiter_from_settings(RateLimitSettings())
    assert isinstance(configured, MemoryRateLimiter)
    assert configured.default == DEFAULT
    limiter = MemoryRateLimiter(Limits(requests_per_minute=100, tokens_per_minute=10**9), clock=clock)

    async def scenario() -> RateLimitDecision:
        assert all(await _take(limiter, "key-a", 100))
        return await limiter.acquire("key-a", 1)

    refused = asyncio.run(scenario())
    assert not refused.allowed
    assert refused.limited_by == "requests"
    assert refused.retry_after_s == pytest.approx(0.6)  # one request refills every 0.6 s
    assert refused.headers()["retry-after"] == "1"
    assert refused.headers()["x-ratelimit-remaining-requests"] == "0"
    assert "requests per minute (limit 100)" in refused.message
    clock.now += 0.6
    assert asyncio.run(limiter.acquire("key-a", 1)).allowed
    assert asyncio.run(limiter.acquire("key-b", 1)).allowed  # keys are independent


def test_token_bucket_refuses_without_charging_and_settles_unused_tokens() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(Limits(requests_per_minute=1000, tokens_per_minute=600), clock=clock)

    async def scenario() -> None:
        first = await limiter.acquire("k", 500)
        assert first.allowed
        assert first.remaining_tokens == 100
        refused = await limiter.acquire("k", 200)
        assert not refused.allowed
        assert refused.limited_by == "tokens"
        assert refused.retry_after_s == pytest.approx(10.0)  # 100 missing at 10 tokens/s
        assert refused.remaining_requests == 999  # the refused request took nothing
        await limiter.settle("k", reserved=500, used=120)  # the answer was short
        assert (await limiter.acquire("k", 200)).allowed
        too_big = await limiter.acquire("k", 601)
        assert not too_big.allowed
        assert too_big.too_large
        assert "retry-after" not in too_big.headers()
        assert "request too large" in too_big.message

    asyncio.run(scenario())


def test_overrun_is_charged_as_debt() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(Limits(requests_per_minute=1000, tokens_per_minute=600), clock=clock)

    async def scenario() -> RateLimitDecision:
        assert (await limiter.acquire("k", 100)).allowed
        await limiter.settle("k", reserved=100, used=700)  # 600 more than reserved
        return await limiter.acquire("k", 1)

    decision = asyncio.run(scenario())
    assert not decision.allowed
    assert decision.retry_after_s == pytest.approx(10.1)


def test_idle_full_buckets_are_evicted_first() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(DEFAULT, clock=clock, max_keys=3)

    async def scenario() -> None:
        for i in range(10):
            assert (await limiter.acquire(f"key-{i}", 1)).allowed
            clock.now += 61

    asyncio.run(scenario())
    assert len(limiter._buckets) == 3


def test_token_estimate_counts_prompt_and_completion() -> None:
    body = {"messages": [{"role": "user", "content": "abcd" * 10}, {"role": "user", "content": "你好世界"}]}
    assert estimate_tokens(body, default_max_tokens=100) == 10 + 4 + 100
    assert estimate_tokens({**body, "max_tokens": 7, "n": 2}, default_max_tokens=100) == 14 + 14
    assert estimate_tokens({"prompt": "abcdefgh"}, default_max_tokens=1) == 3


def test_token_estimate_takes_what_the_engine_obeys() -> None:
    """Chat: the larger of max_tokens and max_completion_tokens; completions: max_tokens only
    (vLLM ignores max_completion_tokens there)."""
    chat = {"messages": [{"role": "user", "content": "abcd"}]}
    assert estimate_tokens({**chat, "max_tokens": 300, "max_completion_tokens": 2}, 100) == 1 + 300
    assert estimate_tokens({**chat, "max_tokens": 2, "max_completion_tokens": 300}, 100) == 1 + 300
    completion = {"prompt": "abcd", "max_completion_tokens": 2}
    assert estimate_tokens({**completion, "max_tokens": 300}, 100) == 1 + 300
    assert estimate_tokens(completion, 100) == 1 + 100  # the default: max_completion_tokens is no bound here
    assert estimate_tokens({**chat, "max_tokens": 2}, 100, endpoint="completions") == 1 + 2


def test_token_estimate_charges_every_sequence() -> None:
    assert estimate_tokens({"prompt": "abcd", "max_tokens": 10, "n": 3}, 100) == 1 + 30
    assert estimate_tokens({"prompt": "abcd", "max_tokens": 10, "n": 2, "best_of": 5}, 100) == 1 + 50
    assert estimate_tokens({"prompt": ["abcd", "efgh", "ijkl"], "max_tokens": 10, "n": 2}, 100) == 3 + 60
    assert estimate_tokens({"prompt": [1, 2, 3, 4, 5], "max_tokens": 10}, 100) == 5 + 10  # one prompt of token ids
    assert estimate_tokens({"prompt": [[1, 2], [3, 4, 5]], "max_tokens": 10}, 100) == 5 + 20


@pytest.mark.redis
def test_two_instances_sharing_redis_share_a_keys_limit(redis_url: str) -> None:
    settings = RateLimitSettings(redis_url=redis_url, requests_per_minute=10, tokens_per_minute=10_000)

    async def scenario() -> tuple[list[bool], list[bool], RateLimitDecision, RateLimitDecision]:
        a = rate_limiter_from_settings(settings)
        b = rate_limiter_from_settings(settings)
        assert isinstance(a, RedisRateLimiter)
        assert isinstance(b, RedisRateLimiter)
        try:
            from_a = await _take(a, "shared-key", 6)
            from_b = await _take(b, "shared-key", 4)
            refused = await b.acquire("shared-key", 1)
            other_key = await a.acquire("other-key", 1)
        finally:
            await a.aclose()
            await b.aclose()
        assert a.redis_errors == b.redis_errors == 0
        return from_a, from_b, refused, other_key

    from_a, from_b, refused, other_key = asyncio.run(scenario())
    assert all(from_a)
    assert all(from_b)
    assert not refused.allowed
    assert refused.limited_by == "requests"
    assert not refused.degraded
    assert refused.retry_after_s == pytest.approx(6.0, abs=0.1)  # 10/min: one every 6 s
    assert other_key.allowed
    assert other_key.remaining_requests == 9
    keys = [k.decode() for k in redis.Redis.from_url(redis_url).keys("*")]
    assert sorted(keys) == sorted(settings.key_prefix + key_id(k) for k in ("shared-key", "other-key"))
    assert not any("shared-key" in k for k in keys)  # raw API keys never reach Redis


@pytest.mark.redis
def test_redis_buckets_refill_on_server_time_and_settle(redis_url: str) -> None:
    limits = Limits(requests_per_minute=600, tokens_per_minute=600)  # 10 per second

    async def scenario() -> None:
        limiter = RedisRateLimiter(redis.asyncio.Redis.from_url(redis_url), limits)
        try:
            assert (await limiter.acquire("k", 595)).allowed
            refused = await limiter.acquire("k", 20)
            assert not refused.allowed
            assert refused.limited_by == "tokens"
            assert 1.0 <= refused.retry_after_s <= 1.6
            await asyncio.sleep(refused.retry_after_s + 0.1)
            assert (await limiter.acquire("k", 20)).allowed
            await limiter.settle("k", reserved=595, used=95)  # 500 back
            assert (await limiter.acquire("k", 450)).allowed
            too_big = await limiter.acquire("k", 601)
            assert too_big.too_large
            assert not too_big.allowed
            ttl = await limiter._client.pttl(limiter._prefix + key_id("k"))
            assert 0 < ttl <= 62_000  # gone once it would be full again
        finally:
            await limiter.aclose()

    start = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - start < 30


def test_unreachable_redis_limits_per_instance(dead_redis_url: str) -> None:
    settings = RateLimitSettings(redis_url=dead_redis_url, requests_per_minute=2)

    async def scenario() -> list[RateLimitDecision]:
        limiter = rate_limiter_from_settings(settings)
        try:
            return [await limiter.acquire("k", 1) for _ in range(3)]
        finally:
            await limiter.aclose()

    decisions = asyncio.run(scenario())
    assert [d.allowed for d in decisions] == [True, True, False]
    assert all(d.degraded for d in decisions)
