"""Rate limits per API key: token buckets for requests/minute and tokens/minute.

Both buckets start full and refill continuously (capacity per 60 s). A request takes one
request token and its token estimate (prompt + max_tokens) in one step, and only when
both buckets can pay, so a refused request costs nothing. After the answer,
`settle(key, reserved, used)` returns the unused estimate (or charges an overrun).

- `MemoryRateLimiter`: per instance.
- `RedisRateLimiter`: region-wide; one Lua script per decision, atomic, on Redis' clock
  (`TIME`), so instances with skewed clocks agree. If Redis fails, the decision falls back
  to a per-instance limiter and the error is logged and counted: a cache outage must not
  turn into an API outage.

Keys are identified by a SHA-256 prefix of the API key: raw keys never reach Redis.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.config.features import RateLimitSettings

log = logging.getLogger("service.ratelimit")

Dimension = Literal["requests", "tokens"]
_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class Limits:
    requests_per_minute: int
    tokens_per_minute: int


@dataclass(frozen=True, slots=True)
class RateLimitDecision:
    allowed: bool
    limits: Limits
    remaining_requests: int
    remaining_tokens: int
    retry_after_s: float = 0.0
    limited_by: Dimension | None = None
    # The request alone needs more tokens than a full minute's bucket: no wait helps.
    too_large: bool = False
    degraded: bool = False  # decided per instance because Redis was unavailable

    @property
    def message(self) -> str:
        if self.allowed:
            return "ok"
        if self.too_large:
            return (
                f"request too large: it may use more tokens than the limit of {self.limits.tokens_per_minute} "
                "tokens per minute; lower max_tokens or shorten the prompt"
            )
        limit = self.limits.requests_per_minute if self.limited_by == "requests" else self.limits.tokens_per_minute
        return (
            f"rate limit reached for {self.limited_by} per minute (limit {limit}); "
            f"retry after {self.retry_after_header} s"
        )

    @property
    def retry_after_header(self) -> int:
        """Whole seconds for `Retry-After` (at least 1)."""
        return max(1, math.ceil(self.retry_after_s))

    def headers(self) -> dict[str, str]:
        """`x-ratelimit-*` headers as OpenAI sends them, plus `Retry-After` on refusal."""
        out = {
            "x-ratelimit-limit-requests": str(self.limits.requests_per_minute),
            "x-ratelimit-remaining-requests": str(self.remaining_requests),
            "x-ratelimit-limit-tokens": str(self.limits.tokens_per_minute),
            "x-ratelimit-remaining-tokens": str(self.remaining_tokens),
        }
        if not self.allowed and not self.too_large:
            out["retry-after"] = str(self.retry_after_header)
        return out


class RateLimiter(Protocol):
    async def acquire(self, api_key: str, tokens: int, limits: Limits | None = None) -> RateLimitDecision: ...

    async def settle(self, api_key: str, reserved: int, used: int, limits: Limits | None = None) -> None: ...

    async def aclose(self) -> None: ...


def key_id(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:32]


# The request fields that bound how many tokens the engine generates, per endpoint. vLLM's
# chat obeys max_completion_tokens, else max_tokens (another OpenAI-compatible pool may obey
# either); its completions obey only max_tokens (the gateway copies max_completion_tokens
# there when the client gave only that). The estimate takes the largest that is present.
GENERATION_BOUNDS: dict[str, tuple[str, ...]] = {
    "chat": ("max_tokens", "max_completion_tokens"),
    "completions": ("max_tokens",),
}


def generation_bound(body: Mapping[str, Any], endpoint: str, default: int) -> int:
    """The most tokens one sequence of this request may generate."""
    values = [body.get(name) for name in GENERATION_BOUNDS[endpoint]]
    bounds = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0]
    return max(bounds) if bounds else default


def estimate_tokens(body: Mapping[str, Any], default_max_tokens: int, *, endpoint: str | None = None) -> int:
    """Upper-bound token cost of a request before it runs: prompt estimate + the generation
    bound for every sequence it asks for (n, or best_of, per prompt of a completions batch).

    Prompt estimate: CJK characters count one token each, other text one per 4 characters,
    token-id prompts their length. `endpoint` ("chat" or "completions") defaults to the one
    the body's shape says (messages or prompt).
    """
    endpoint = endpoint or ("chat" if "messages" in body else "completions")
    texts: list[str] = []
    token_ids = 0
    prompts = 1
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            content = m.get("content") if isinstance(m, Mapping) else None
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts.extend(p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        texts.append(prompt)
    elif isinstance(prompt, list) and prompt:
        if all(isinstance(p, int) for p in prompt):
            token_ids += len(prompt)  # one prompt as token ids
        else:
            prompts = len(prompt)
            texts.extend(p for p in prompt if isinstance(p, str))
            token_ids += sum(len(p) for p in prompt if isinstance(p, list))
    wide = other = 0
    for text in texts:
        for ch in text:
            if unicodedata.east_asian_width(ch) in ("W", "F"):
                wide += 1
            else:
                other += 1
    completion = generation_bound(body, endpoint, default_max_tokens)
    n, best_of = body.get("n"), body.get("best_of")
    per_prompt = max(
        n if isinstance(n, int) and n > 0 else 1,
        best_of if isinstance(best_of, int) and best_of > 0 else 1,
    )
    return wide + math.ceil(other / 4) + token_ids + completion * per_prompt * prompts


# ---------------------------------------------------------------------------------------
# Per instance


@dataclass(slots=True)
class _Bucket:
    requests: float
    tokens: float
    at: float


class MemoryRateLimiter:
    """Token buckets in this process; `clock` is monotonic seconds (injectable)."""

    def __init__(
        self, default: Limits, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self.default = default
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    async def aclose(self) -> None:
        self._buckets.clear()

    def _refilled(self, ident: str, limits: Limits) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(ident)
        if bucket is None:
            bucket = _Bucket(float(limits.requests_per_minute), float(limits.tokens_per_minute), now)
            self._buckets[ident] = bucket
            self._evict()
        else:
            elapsed = max(now - bucket.at, 0.0)
            bucket.requests = min(
                limits.requests_per_minute, bucket.requests + elapsed * limits.requests_per_minute / _WINDOW_S
            )
            bucket.tokens = min(
                limits.tokens_per_minute, bucket.tokens + elapsed * limits.tokens_per_minute / _WINDOW_S
            )
            bucket.at = now
            self._buckets.move_to_end(ident)
        return bucket

    def _evict(self) -> None:
        # A bucket untouched for a full window is full again: dropping it loses nothing.
        # Beyond that, drop the least recently used.
        now = self._clock()
        while len(self._buckets) > self._max_keys:
            ident, oldest = next(iter(self._buckets.items()))
            del self._buckets[ident]
            if now - oldest.at < _WINDOW_S:
                log.warning("rate limiter: %d active keys exceed max_keys; evicting the least recent", self._max_keys)

    def decide_id(self, ident: str, tokens: int, limits: Limits) -> RateLimitDecision:
        if tokens > limits.tokens_per_minute:
            bucket = self._refilled(ident, limits)
            return _refused_too_large(limits, bucket.requests, bucket.tokens)
        bucket = self._refilled(ident, limits)
        wait_r = _wait(1, bucket.requests, limits.requests_per_minute)
        wait_t = _wait(tokens, bucket.tokens, limits.tokens_per_minute)
        if wait_r == 0 and wait_t == 0:
            bucket.requests -= 1
            bucket.tokens -= tokens
            return RateLimitDecision(True, limits, _floor(bucket.requests), _floor(bucket.tokens))
        limited_by: Dimension = "requests" if wait_r >= wait_t else "tokens"
        return RateLimitDecision(
            False,
            limits,
            _floor(bucket.requests),
            _floor(bucket.tokens),
            retry_after_s=max(wait_r, wait_t),
            limited_by=limited_by,
        )

    async def acquire(self, api_key: str, tokens: int, limits: Limits | None = None) -> RateLimitDecision:
        return self.decide_id(key_id(api_key), tokens, limits or self.default)

    def settle_id(self, ident: str, reserved: int, used: int, limits: Limits) -> None:
        bucket = self._refilled(ident, limits)
        bucket.tokens = min(limits.tokens_per_minute, bucket.tokens + (reserved - used))

    async def settle(self, api_key: str, reserved: int, used: int, limits: Limits | None = None) -> None:
        self.settle_id(key_id(api_key), reserved, used, limits or self.default)


def _wait(cost: float, available: float, per_minute: int) -> float:
    return 0.0 if available >= cost else (cost - available) * _WINDOW_S / per_minute


def _floor(value: float) -> int:
    return max(0, math.floor(value + 1e-9))


def _refused_too_large(limits: Limits, requests: float, tokens: float) -> RateLimitDecision:
    return RateLimitDecision(False, limits, _floor(requests), _floor(tokens), limited_by="tokens", too_large=True)


# ---------------------------------------------------------------------------------------
# Region-wide through Redis

# KEYS[1] bucket hash; ARGV: requests/min, tokens/min, request cost, token cost, mode
# mode "take": take both costs if both buckets can pay; "settle": add ARGV[4] tokens back
# (negative: charge an overrun). Returns {allowed, wait_ms, requests_left, tokens_left}.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rcap = tonumber(ARGV[1])
local tcap = tonumber(ARGV[2])
local rcost = tonumber(ARGV[3])
local tcost = tonumber(ARGV[4])
local s = redis.call('HMGET', KEYS[1], 'r', 't', 'at')
local r = tonumber(s[1]) or rcap
local k = tonumber(s[2]) or tcap
local at = tonumber(s[3]) or now
local elapsed = math.max(now - at, 0)
r = math.min(rcap, r + elapsed * rcap / 60000)
k = math.min(tcap, k + elapsed * tcap / 60000)
local allowed = 1
local wait_r = 0
local wait_t = 0
if ARGV[5] == 'settle' then
  k = math.min(tcap, k + tcost)
else
  if rcost > r then wait_r = math.ceil((rcost - r) * 60000 / rcap) end
  if tcost > k then wait_t = math.ceil((tcost - k) * 60000 / tcap) end
  if wait_r > 0 or wait_t > 0 then
    allowed = 0
  else
    r = r - rcost
    k = k - tcost
  end
end
redis.call('HSET', KEYS[1], 'r', tostring(r), 't', tostring(k), 'at', tostring(now))
local full = math.max((rcap - r) * 60000 / rcap, (tcap - k) * 60000 / tcap)
redis.call('PEXPIRE', KEYS[1], math.ceil(full) + 1000)
return {allowed, wait_r, wait_t, tostring(r), tostring(k)}
"""


class RedisRateLimiter:
    """Region-wide buckets in Redis; falls back to `fallback` (per instance) on errors."""

    def __init__(
        self,
        client: Redis,
        default: Limits,
        *,
        prefix: str = "llm-fleet:rl:",
        fallback: MemoryRateLimiter | None = None,
    ) -> None:
        self.default = default
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_LUA)
        self.fallback = fallback or MemoryRateLimiter(default)
        self.redis_errors = 0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _run(self, ident: str, limits: Limits, rcost: int, tcost: int, mode: str) -> list[Any]:
        args: list[str | int] = [limits.requests_per_minute, limits.tokens_per_minute, rcost, tcost, mode]
        result = await self._script(keys=[self._prefix + ident], args=args)
        if not isinstance(result, list) or len(result) != 5:
            raise RedisError(f"unexpected rate-limit script reply: {result!r}")
        return result

    async def acquire(self, api_key: str, tokens: int, limits: Limits | None = None) -> RateLimitDecision:
        limits = limits or self.default
        ident = key_id(api_key)
        too_large = tokens > limits.tokens_per_minute
        # A request that can never pass takes nothing: the script only reports the state.
        rcost, tcost = (0, 0) if too_large else (1, tokens)
        try:
            allowed, wait_r, wait_t, left_r, left_t = await self._run(ident, limits, rcost, tcost, "take")
        except (RedisError, OSError) as exc:
            self._failed("acquire", exc)
            return _degraded(self.fallback.decide_id(ident, tokens, limits))
        remaining_r, remaining_t = _floor(float(left_r)), _floor(float(left_t))
        if too_large:
            return _refused_too_large(limits, remaining_r, remaining_t)
        if int(allowed) == 1:
            return RateLimitDecision(True, limits, remaining_r, remaining_t)
        wait_r_s, wait_t_s = int(wait_r) / 1000, int(wait_t) / 1000
        return RateLimitDecision(
            False,
            limits,
            remaining_r,
            remaining_t,
            retry_after_s=max(wait_r_s, wait_t_s),
            limited_by="requests" if wait_r_s >= wait_t_s else "tokens",
        )

    async def settle(self, api_key: str, reserved: int, used: int, limits: Limits | None = None) -> None:
        limits = limits or self.default
        ident = key_id(api_key)
        if reserved == used:
            return
        try:
            await self._run(ident, limits, 0, reserved - used, "settle")
        except (RedisError, OSError) as exc:
            self._failed("settle", exc)
            self.fallback.settle_id(ident, reserved, used, limits)

    def _failed(self, op: str, exc: BaseException) -> None:
        self.redis_errors += 1
        log.warning("rate limiter: redis %s failed (%s: %s); limiting per instance", op, type(exc).__name__, exc)


def _degraded(decision: RateLimitDecision) -> RateLimitDecision:
    return RateLimitDecision(
        decision.allowed,
        decision.limits,
        decision.remaining_requests,
        decision.remaining_tokens,
        decision.retry_after_s,
        decision.limited_by,
        decision.too_large,
        degraded=True,
    )


def rate_limiter_from_settings(settings: RateLimitSettings) -> RateLimiter:
    """Redis-backed when `redis_url` is set (connects lazily), per instance otherwise."""
    default = Limits(settings.requests_per_minute, settings.tokens_per_minute)
    if settings.redis_url:
        client = Redis.from_url(
            settings.redis_url,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
        )
        return RedisRateLimiter(client, default, prefix=settings.key_prefix)
    return MemoryRateLimiter(default)
