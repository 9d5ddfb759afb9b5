"""Response cache for deterministic requests.

- `cache_policy(endpoint, body, headers, settings)` decides whether a request may be read
  from and/or written to the cache and computes its key: a SHA-256 of canonical JSON over
  the endpoint, the model, the messages/prompt and every generation parameter (transport
  options such as `stream` and `user` are not part of the answer and are left out).
- `ResponseCache` is read-through over two tiers: an in-memory LRU with TTL per instance
  and, when configured, a Redis tier shared by a region's instances (memory first, then
  Redis, which refills memory; writes go to both). Redis trouble never fails a request:
  the cache degrades to memory and counts the error.
- `replay_as_sse(response)` turns a stored (non-streamed) chat or text completion back
  into an OpenAI-format server-sent-event stream, so streaming clients get hits too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.api.protocol import EndpointKind
from service.config.features import CacheSettings

log = logging.getLogger("service.cache")

Clock = Callable[[], float]

# Request fields that change how the answer travels or is attributed, not what it says.
_TRANSPORT_FIELDS = frozenset({"stream", "stream_options", "user", "metadata", "store", "service_tier"})
_KEY_VERSION = 1
_TRUE = frozenset({"1", "true", "yes", "on"})

CACHE_HEADER = "x-cache"  # hit | miss | fallback (set by the gateway)


class CacheStatus(StrEnum):
    HIT = "hit"
    MISS = "miss"
    FALLBACK = "fallback"


# ---------------------------------------------------------------------------------------
# Keys and policy


def _canonical(value: Any) -> Any:
    """JSON-ready value with numbers normalised (0 and 0.0 hash alike)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return value
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def canonical_json(value: Any) -> str:
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def cache_key(endpoint: EndpointKind, body: Mapping[str, Any], *, scope: str | None = None) -> str:
    """Stable key: same model, input and generation parameters -> same key.

    The gateway passes the body with `model` already resolved to the pool's model, so
    `auto` and the explicit name share entries. `scope` (an API key's id) keeps the entry
    to that key; None shares it with every key.
    """
    payload = {k: v for k, v in body.items() if k not in _TRANSPORT_FIELDS}
    document: dict[str, Any] = {"v": _KEY_VERSION, "endpoint": endpoint, "request": payload}
    if scope is not None:
        document["scope"] = scope
    digest = hashlib.sha256(canonical_json(document).encode())
    return digest.hexdigest()


def _cache_control(headers: Mapping[str, str]) -> dict[str, str]:
    """Request cache directives, lower-case name -> value ("" without one). `Pragma: no-cache`
    counts as `Cache-Control: no-cache` (HTTP/1.0 clients and proxies send it)."""
    directives: dict[str, str] = {}
    for name in ("cache-control", "pragma"):
        value = _header(headers, name) or ""
        for item in value.split(","):
            key, _, argument = item.strip().partition("=")
            if key:
                directives.setdefault(key.strip().lower(), argument.strip().strip('"'))
    return directives


def _header(headers: Mapping[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


@dataclass(frozen=True, slots=True)
class CachePolicy:
    """What the gateway may do with the cache for one request."""

    key: str | None
    lookup: bool
    store: bool
    reason: str

    @property
    def cacheable(self) -> bool:
        return self.key is not None


def is_deterministic(body: Mapping[str, Any]) -> bool:
    """Greedy decoding: temperature 0 (OpenAI's default is 1, so it must be explicit)."""
    temperature = body.get("temperature")
    return isinstance(temperature, int | float) and not isinstance(temperature, bool) and temperature == 0


def cache_policy(
    endpoint: EndpointKind,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    settings: CacheSettings,
    *,
    scope: str | None = None,
) -> CachePolicy:
    """Decide lookup/store for a request; `Cache-Control: no-cache` or `max-age=0` (or
    `Pragma: no-cache`) skips the lookup (a fresh answer is still stored), `no-store`
    skips both. A request that skips the lookup never gets a cached answer, not even as
    the deadline fallback. `scope` keeps entries to one API key (see `cache_key`)."""
    if not settings.enabled:
        return CachePolicy(None, lookup=False, store=False, reason="cache disabled")
    opted_in = settings.allow_opt_in and (_header(headers, settings.opt_in_header) or "").strip().lower() in _TRUE
    if not (is_deterministic(body) or opted_in):
        return CachePolicy(None, lookup=False, store=False, reason="not deterministic (temperature != 0, no opt-in)")
    try:
        key = cache_key(endpoint, body, scope=scope)
    except (TypeError, ValueError):
        return CachePolicy(None, lookup=False, store=False, reason="request is not canonical JSON")
    directives = _cache_control(headers)
    if "no-store" in directives:
        return CachePolicy(key, lookup=False, store=False, reason="Cache-Control: no-store")
    if "no-cache" in directives:
        return CachePolicy(key, lookup=False, store=True, reason="Cache-Control: no-cache")
    if directives.get("max-age") == "0":
        return CachePolicy(key, lookup=False, store=True, reason="Cache-Control: max-age=0")
    return CachePolicy(key, lookup=True, store=True, reason="deterministic" if not opted_in else "opt-in")


# ---------------------------------------------------------------------------------------
# Tiers


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A full (non-streamed) OpenAI response body and when it was stored (epoch s)."""

    body: Mapping[str, Any]
    stored_at: float

    def to_json(self) -> str:
        return json.dumps({"body": self.body, "stored_at": self.stored_at}, separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> CachedResponse:
        data = json.loads(raw)
        if not isinstance(data, dict) or not isinstance(data.get("body"), dict):
            raise ValueError("cached entry is not a response object")
        return cls(body=data["body"], stored_at=float(data.get("stored_at", 0.0)))


class MemoryTier:
    """LRU with a TTL per entry; `clock` is monotonic seconds (injectable for tests)."""

    def __init__(self, max_entries: int, ttl_s: float, clock: Clock = time.monotonic) -> None:
        self._max = max_entries
        self._ttl = ttl_s
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, CachedResponse]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> CachedResponse | None:
        item = self._data.get(key)
        if item is None:
            return None
        expires, value = item
        if self._clock() >= expires:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value

    def put(self, key: str, value: CachedResponse, ttl_s: float | None = None) -> None:
        ttl = self._ttl if ttl_s is None else min(ttl_s, self._ttl)
        if ttl <= 0:
            return
        self._data[key] = (self._clock() + ttl, value)
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()


class RedisTier:
    """Entries as JSON strings with a server-side expiry, shared by a region's instances."""

    def __init__(self, client: Redis, *, prefix: str, ttl_s: float) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = max(int(ttl_s * 1000), 1)

    async def get(self, key: str) -> tuple[CachedResponse, float] | None:
        """The entry and its remaining TTL in seconds, or None."""
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.get(self._prefix + key)
            pipe.pttl(self._prefix + key)
            raw, pttl = await pipe.execute()
        if raw is None:
            return None
        remaining = pttl / 1000 if isinstance(pttl, int) and pttl > 0 else self._ttl_ms / 1000
        return CachedResponse.from_json(raw), remaining

    async def put(self, key: str, value: CachedResponse) -> None:
        await self._client.set(self._prefix + key, value.to_json(), px=self._ttl_ms)


# ---------------------------------------------------------------------------------------
# The cache


@dataclass(slots=True)
class CacheStats:
    memory_hits: int = 0
    redis_hits: int = 0
    misses: int = 0
    stores: int = 0
    redis_errors: int = 0
    skipped_too_large: int = 0

    @property
    def hits(self) -> int:
        return self.memory_hits + self.redis_hits

    @property
    def hit_ratio(self) -> float:
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


@dataclass(slots=True)
class _Metrics:
    lookups: Counter
    stores: Counter
    errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, namespace: str) -> _Metrics:
        return cls(
            lookups=Counter(
                "cache_lookups",
                "Response cache lookups by result (hit/miss) and tier (memory/redis/none)",
                ["result", "tier"],
                namespace=namespace,
                registry=registry,
            ),
            stores=Counter("cache_stores", "Responses written to the cache", namespace=namespace, registry=registry),
            errors=Counter(
                "cache_redis_errors", "Redis tier failures (served from memory)", namespace=namespace, registry=registry
            ),
        )


@dataclass
class ResponseCache:
    """Read-through cache: memory, then Redis (refilling memory); writes go to both.

    Hit ratio for metrics: `stats.hit_ratio`, or the Prometheus counters
    `<namespace>_cache_lookups_total{result,tier}` when a registry is given.
    """

    settings: CacheSettings
    redis: Redis | None = None
    registry: CollectorRegistry | None = None
    namespace: str = "llm"
    clock: Clock = time.monotonic
    wall_clock: Clock = time.time
    stats: CacheStats = field(default_factory=CacheStats, init=False)

    def __post_init__(self) -> None:
        self.memory = MemoryTier(self.settings.max_entries, self.settings.ttl_s, self.clock)
        self._redis_tier = (
            RedisTier(self.redis, prefix=self.settings.key_prefix, ttl_s=self.settings.ttl_s) if self.redis else None
        )
        self._metrics = _Metrics.create(self.registry, self.namespace) if self.registry is not None else None

    @classmethod
    def from_settings(
        cls, settings: CacheSettings, *, registry: CollectorRegistry | None = None, namespace: str = "llm"
    ) -> ResponseCache:
        """Connects lazily to `settings.redis_url` when set (no I/O here)."""
        client = None
        if settings.redis_url:
            client = Redis.from_url(
                settings.redis_url,
                socket_timeout=settings.redis_timeout_s,
                socket_connect_timeout=settings.redis_timeout_s,
            )
        return cls(settings, redis=client, registry=registry, namespace=namespace)

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    async def get(self, key: str) -> CachedResponse | None:
        value = self.memory.get(key)
        if value is not None:
            self._count_lookup("hit", "memory")
            return value
        if self._redis_tier is not None:
            try:
                found = await self._redis_tier.get(key)
            except (RedisError, OSError, ValueError) as exc:
                self._redis_failed("get", exc)
                found = None
            if found is not None:
                value, remaining_s = found
                self.memory.put(key, value, ttl_s=remaining_s)
                self._count_lookup("hit", "redis")
                return value
        self._count_lookup("miss", "none")
        return None

    async def put(self, key: str, body: Mapping[str, Any]) -> bool:
        """Store a full response body; False when it is not worth storing."""
        if not _storable(body):
            return False
        value = CachedResponse(body=dict(body), stored_at=self.wall_clock())
        raw_size = len(value.to_json().encode())
        if raw_size > self.settings.max_entry_bytes:
            self.stats.skipped_too_large += 1
            return False
        self.memory.put(key, value)
        if self._redis_tier is not None:
            try:
                await self._redis_tier.put(key, value)
            except (RedisError, OSError) as exc:
                self._redis_failed("put", exc)
        self.stats.stores += 1
        if self._metrics:
            self._metrics.stores.inc()
        return True

    def _count_lookup(self, result: Literal["hit", "miss"], tier: Literal["memory", "redis", "none"]) -> None:
        if tier == "memory":
            self.stats.memory_hits += 1
        elif tier == "redis":
            self.stats.redis_hits += 1
        else:
            self.stats.misses += 1
        if self._metrics:
            self._metrics.lookups.labels(result=result, tier=tier).inc()

    def _redis_failed(self, op: str, exc: BaseException) -> None:
        self.stats.redis_errors += 1
        if self._metrics:
            self._metrics.errors.inc()
        log.warning("response cache: redis %s failed (%s: %s); using memory only", op, type(exc).__name__, exc)


def _storable(body: Mapping[str, Any]) -> bool:
    """Only complete answers: no error, every choice finished normally or by length."""
    if "error" in body:
        return False
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    return all(isinstance(c, Mapping) and c.get("finish_reason") in ("stop", "length", "tool_calls") for c in choices)


# ---------------------------------------------------------------------------------------
# Replay as a stream


def _split(text: str, size: int) -> list[str]:
    """Pieces of about `size` characters, cut after whitespace where possible."""
    pieces: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            space = text.rfind(" ", start + 1, end + 1)
            if space > start:
                end = space + 1
        pieces.append(text[start:end])
        start = end
    return pieces


def _event(payload: Mapping[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def replay_as_sse(body: Mapping[str, Any], *, include_usage: bool = False, piece_chars: int = 24) -> Iterator[bytes]:
    """A stored chat/text completion as OpenAI SSE chunks, ending with `data: [DONE]`.

    Chat: per choice a role chunk, content pieces (tool calls in one delta), then a
    chunk with `finish_reason`; text completions: text pieces then `finish_reason`.
    `include_usage` mirrors `stream_options.include_usage` (a last chunk, no choices).
    """
    chat = body.get("object") == "chat.completion"
    base = {
        "id": body.get("id", "cached"),
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": body.get("created", 0),
        "model": body.get("model", ""),
    }
    if body.get("system_fingerprint") is not None:
        base["system_fingerprint"] = body["system_fingerprint"]
    choices = body.get("choices") or []
    for choice in choices:
        index = choice.get("index", 0)
        if chat:
            message = choice.get("message") or {}
            yield _event({**base, "choices": [_chat_choice(index, {"role": "assistant", "content": ""})]})
            for piece in _split(message.get("content") or "", piece_chars):
                yield _event({**base, "choices": [_chat_choice(index, {"content": piece})]})
            if message.get("tool_calls"):
                calls = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
                yield _event({**base, "choices": [_chat_choice(index, {"tool_calls": calls})]})
            yield _event({**base, "choices": [_chat_choice(index, {}, choice.get("finish_reason"))]})
        else:
            for piece in _split(choice.get("text") or "", piece_chars):
                yield _event({**base, "choices": [_text_choice(index, piece)]})
            yield _event({**base, "choices": [_text_choice(index, "", choice.get("finish_reason"))]})
    if include_usage and body.get("usage") is not None:
        yield _event({**base, "choices": [], "usage": body["usage"]})
    yield b"data: [DONE]\n\n"


def _chat_choice(index: int, delta: Mapping[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": index, "delta": dict(delta), "logprobs": None, "finish_reason": finish_reason}


def _text_choice(index: int, text: str, finish_reason: str | None = None) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}
