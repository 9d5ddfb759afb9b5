"""Response cache: keys, policy, memory tier, Redis tier shared by two instances, SSE replay."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from service.config.features import CacheSettings
from service.pipeline.cache import (
    CachedResponse,
    MemoryTier,
    ResponseCache,
    cache_key,
    cache_policy,
    canonical_json,
    replay_as_sse,
)

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0, "max_tokens": 16}


def chat_response(content: str | None = "Hello there, how can I help you today?", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12},
        **extra,
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- keys and policy ---------------------------------------------------------------------


def test_key_ignores_field_order_number_spelling_and_transport_fields() -> None:
    a = cache_key("chat", CHAT)
    reordered = {"max_tokens": 16, "temperature": 0.0, "messages": [{"content": "hi", "role": "user"}], "model": "m"}
    assert cache_key("chat", reordered) == a
    assert cache_key("chat", {**CHAT, "stream": True, "stream_options": {"include_usage": True}, "user": "u1"}) == a


@pytest.mark.parametrize(
    "change",
    [
        {"model": "other"},
        {"messages": [{"role": "user", "content": "hi!"}]},
        {"max_tokens": 17},
        {"top_p": 0.5},
        {"seed": 1},
        {"stop": ["\n"]},
        {"n": 2},
    ],
)
def test_key_changes_with_model_input_and_generation_parameters(change: dict[str, Any]) -> None:
    assert cache_key("chat", {**CHAT, **change}) != cache_key("chat", CHAT)


def test_key_differs_between_endpoints() -> None:
    body = {"model": "m", "prompt": "hi", "temperature": 0}
    assert cache_key("chat", body) != cache_key("completions", body)


def test_canonical_json_is_sorted_compact_and_unicode() -> None:
    assert canonical_json({"b": 1.0, "a": ["中", 0.5]}) == '{"a":["中",0.5],"b":1}'


def test_policy_caches_only_deterministic_requests_or_opt_in() -> None:
    settings = CacheSettings()
    assert cache_policy("chat", CHAT, {}, settings).lookup
    no_temperature = {k: v for k, v in CHAT.items() if k != "temperature"}
    assert not cache_policy("chat", no_temperature, {}, settings).cacheable  # OpenAI default is 1
    warm = {**CHAT, "temperature": 0.7}
    assert not cache_policy("chat", warm, {}, settings).cacheable
    opted = cache_policy("chat", warm, {"X-Cache-Opt-In": "true"}, settings)
    assert opted.lookup
    assert opted.store
    assert opted.key == cache_key("chat", warm)
    strict = CacheSettings(allow_opt_in=False)
    assert not cache_policy("chat", warm, {"x-cache-opt-in": "1"}, strict).cacheable
    assert not cache_policy("chat", CHAT, {}, CacheSettings(enabled=False)).cacheable
    assert not cache_policy("chat", {**CHAT, "temperature": False}, {}, settings).cacheable


def test_policy_honours_cache_control() -> None:
    settings = CacheSettings()
    no_cache = cache_policy("chat", CHAT, {"Cache-Control": "no-cache"}, settings)
    assert (no_cache.lookup, no_cache.store) == (False, True)
    no_store = cache_policy("chat", CHAT, {"cache-control": "max-age=0, no-store"}, settings)
    assert (no_store.lookup, no_store.store) == (False, False)
    for headers in ({"cache-control": "max-age=0"}, {"Cache-Control": 'max-age="0"'}, {"pragma": "no-cache"}):
        fresh = cache_policy("chat", CHAT, headers, settings)
        assert (fresh.lookup, fresh.store) == (False, True), headers
    assert cache_policy("chat", CHAT, {"cache-control": "max-age=60"}, settings).lookup


def test_a_scoped_key_differs_per_scope() -> None:
    shared = cache_key("chat", CHAT)
    mine, theirs = cache_key("chat", CHAT, scope="a"), cache_key("chat", CHAT, scope="b")
    assert len({shared, mine, theirs}) == 3
    assert cache_key("chat", CHAT, scope="a") == mine
    assert cache_policy("chat", CHAT, {}, CacheSettings(), scope="a").key == mine


# --- memory tier ---------------------------------------------------------------------------


def test_memory_tier_expires_entries_and_evicts_least_recently_used() -> None:
    clock = FakeClock()
    tier = MemoryTier(max_entries=2, ttl_s=10, clock=clock)
    cache = ResponseCache(CacheSettings(max_entries=2, ttl_s=10), clock=clock)

    async def scenario() -> None:
        assert await cache.put("a", chat_response("a"))
        assert await cache.put("b", chat_response("b"))
        assert await cache.get("a") is not None  # a is now the most recent
        assert await cache.put("c", chat_response("c"))
        assert await cache.get("b") is None  # evicted
        assert await cache.get("a") is not None
        clock.now += 10.5
        assert await cache.get("a") is None  # expired

    asyncio.run(scenario())
    assert cache.stats.hits == 2
    assert cache.stats.misses == 2
    assert cache.stats.hit_ratio == 0.5
    # A shorter TTL (the rest of a Redis entry's life) is kept; a longer one is capped.
    tier.put("short", CachedResponse(body=chat_response(), stored_at=0), ttl_s=1)
    tier.put("long", CachedResponse(body=chat_response(), stored_at=0), ttl_s=100)
    clock.now += 1.01
    assert tier.get("short") is None
    assert tier.get("long") is not None
    clock.now += 9
    assert tier.get("long") is None


def test_incomplete_error_and_oversized_answers_are_not_stored() -> None:
    cache = ResponseCache(CacheSettings(max_entry_bytes=2048))

    async def scenario() -> list[bool]:
        cut = chat_response()
        cut["choices"][0]["finish_reason"] = None
        return [
            await cache.put("k1", {"error": {"message": "boom"}}),
            await cache.put("k2", cut),
            await cache.put("k3", chat_response("x" * 4096)),
            await cache.put("k4", chat_response()),
        ]

    assert asyncio.run(scenario()) == [False, False, False, True]
    assert cache.stats.skipped_too_large == 1


def test_prometheus_counters_on_a_given_registry() -> None:
    registry = CollectorRegistry()
    cache = ResponseCache(CacheSettings(), registry=registry)

    async def scenario() -> None:
        await cache.get("k")
        await cache.put("k", chat_response())
        await cache.get("k")

    asyncio.run(scenario())
    value = registry.get_sample_value
    assert value("llm_cache_lookups_total", {"result": "hit", "tier": "memory"}) == 1
    assert value("llm_cache_lookups_total", {"result": "miss", "tier": "none"}) == 1
    assert value("llm_cache_stores_total") == 1


# --- Redis tier ----------------------------------------------------------------------------


@pytest.mark.redis
def test_two_instances_sharing_redis_share_hits(redis_url: str) -> None:
    settings = CacheSettings(redis_url=redis_url, ttl_s=60)

    async def scenario() -> tuple[ResponseCache, ResponseCache]:
        a = ResponseCache.from_settings(settings)
        b = ResponseCache.from_settings(settings)
        try:
            key = cache_policy("chat", CHAT, {}, settings).key
            assert key is not None
            assert await b.get(key) is None
            assert await a.put(key, chat_response("shared answer"))
            hit = await b.get(key)  # from Redis, then from b's memory
            assert hit is not None
            assert hit.body["choices"][0]["message"]["content"] == "shared answer"
            assert await b.get(key) is not None
            raw_ttl = await Redis.from_url(redis_url).pttl(settings.key_prefix + key)
            assert 0 < raw_ttl <= 60_000
        finally:
            await a.aclose()
            await b.aclose()
        return a, b

    a, b = asyncio.run(scenario())
    assert (b.stats.redis_hits, b.stats.memory_hits, b.stats.misses) == (1, 1, 1)
    assert a.stats.stores == 1
    assert b.stats.redis_errors == 0


@pytest.mark.redis
def test_redis_entries_expire(redis_url: str) -> None:
    settings = CacheSettings(redis_url=redis_url, ttl_s=0.3)

    async def scenario() -> None:
        writer, reader = ResponseCache.from_settings(settings), ResponseCache.from_settings(settings)
        try:
            await writer.put("k", chat_response())
            assert await reader.get("k") is not None
            reader.memory.clear()
            await asyncio.sleep(0.4)
            assert await reader.get("k") is None
        finally:
            await writer.aclose()
            await reader.aclose()

    asyncio.run(scenario())


def test_unreachable_redis_degrades_to_memory(dead_redis_url: str) -> None:
    cache = ResponseCache.from_settings(CacheSettings(redis_url=dead_redis_url))

    async def scenario() -> None:
        try:
            assert await cache.get("k") is None
            assert await cache.put("k", chat_response())
            assert await cache.get("k") is not None
        finally:
            await cache.aclose()

    asyncio.run(scenario())
    assert cache.stats.redis_errors == 2  # the miss and the write; the hit came from memory


# --- SSE replay, read by the official SDK -------------------------------------------------


def _sdk_over(chunks: Iterator[bytes]) -> openai.AsyncOpenAI:
    app = FastAPI()
    payload = list(chunks)

    async def stream() -> StreamingResponse:
        async def gen() -> Any:
            for chunk in payload:
                yield chunk

        return StreamingResponse(gen(), media_type="text/event-stream", headers={"x-cache": "hit"})

    app.post("/v1/chat/completions")(stream)
    app.post("/v1/completions")(stream)
    transport = httpx.ASGITransport(app=app)
    return openai.AsyncOpenAI(
        api_key="k", base_url="http://test/v1", http_client=httpx.AsyncClient(transport=transport), max_retries=0
    )


def test_chat_answer_replays_as_an_openai_stream() -> None:
    text = "Bonjour! Ceci est une réponse mise en cache, rejouée en flux. 你好。"
    body = chat_response(text)

    async def scenario() -> tuple[str, list[Any], Any]:
        client = _sdk_over(replay_as_sse(body, include_usage=True, piece_chars=8))
        async with client:
            stream = await client.chat.completions.create(model="m", messages=[], stream=True)
            chunks = [c async for c in stream]
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return content, chunks, chunks[-1].usage

    content, chunks, usage = asyncio.run(scenario())
    assert content == text
    assert len(chunks) > 4
    assert all(c.object == "chat.completion.chunk" and c.model == "m" and c.id == "chatcmpl-1" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert set(finishes[:-1]) == {None}
    assert usage is not None
    assert usage.total_tokens == 12


def test_text_completion_and_tool_calls_replay() -> None:
    completion = {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [
            {"index": 0, "text": "one two three", "finish_reason": "length"},
            {"index": 1, "text": "four", "finish_reason": "stop"},
        ],
    }
    events = list(replay_as_sse(completion, piece_chars=4))
    assert events[-1] == b"data: [DONE]\n\n"
    decoded = [json.loads(e[len(b"data: ") :]) for e in events[:-1]]
    by_index: dict[int, str] = {}
    for event in decoded:
        choice = event["choices"][0]
        by_index[choice["index"]] = by_index.get(choice["index"], "") + choice["text"]
    assert by_index == {0: "one two three", 1: "four"}
    assert [e["choices"][0]["finish_reason"] for e in decoded if e["choices"][0]["finish_reason"]] == ["length", "stop"]

    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    tool_body = chat_response(None)
    tool_body["choices"][0] = {
        "index": 0,
        "message": {"role": "assistant", "content": None, "tool_calls": [call]},
        "finish_reason": "tool_calls",
    }

    async def scenario() -> list[Any]:
        async with _sdk_over(replay_as_sse(tool_body)) as client:
            stream = await client.chat.completions.create(model="m", messages=[], stream=True)
            return [c async for c in stream]

    chunks = asyncio.run(scenario())
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function is not None
    assert calls[0].function.name == "f"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
