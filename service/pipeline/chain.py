"""The gateway's feature chain for /v1/chat/completions and /v1/completions.

After the gateway has authenticated and validated a request, `FeatureChain.handle` runs

    rate limit -> route (pool, model) -> language instruction -> cache lookup
      -> engine call under the deadline (fallback: the cached answer) -> cache store -> settle tokens

and answers with `x-cache: hit|miss|fallback`, `x-model-used` and the `x-ratelimit-*`
headers. The engine call itself is the gateway's own forwarder (passed in), so the relay
of streams stays where it is; a pool is the local engine or a remote OpenAI-compatible
endpoint behind an `HttpEngineClient` with its own timeouts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from service.api.errors import ApiError
from service.api.protocol import CHAT, MODELS
from service.config.features import FeaturesSettings
from service.pipeline.cache import (
    CACHE_HEADER,
    CachedResponse,
    CacheStatus,
    ResponseCache,
    cache_policy,
    replay_as_sse,
)
from service.pipeline.fallback import (
    InvalidTimeoutHeaderError,
    RequestTimeoutError,
    request_deadline,
    run_with_fallback,
)
from service.pipeline.intent import request_text
from service.pipeline.language import LanguageCounter, detect_language, with_language_instruction
from service.pipeline.pools import MODEL_USED_HEADER, ModelNotFoundError, PoolRouter, RouteDecision
from service.pipeline.ratelimit import (
    RateLimitDecision,
    RateLimiter,
    estimate_tokens,
    key_id,
    rate_limiter_from_settings,
)
from service.pipeline.request import Forward, PreparedRequest, RequestCutError
from service.upstream.client import EngineClient, HttpEngineClient
from service.upstream.relay import StreamEnd, StreamRelay

log = logging.getLogger("service.features")

_METRICS_PREFIX = "llm_gateway"


class _FeatureMetrics:
    def __init__(self, registry: CollectorRegistry, cache: ResponseCache) -> None:
        self.rate_limited = Counter(
            f"{_METRICS_PREFIX}_rate_limited",
            "Requests refused by the per-key rate limits, by the exhausted bucket.",
            ("limited_by",),
            registry=registry,
        )
        self.routing = Counter(
            f"{_METRICS_PREFIX}_routing_decisions",
            "Routing decisions: pool, model and classified intent ('explicit' when the client named the model).",
            ("pool", "model", "intent"),
            registry=registry,
        )
        self.deadline = Counter(
            f"{_METRICS_PREFIX}_deadline_exceeded",
            "Requests past their deadline: answered from the cache (fallback) or 504 (timeout).",
            ("outcome",),
            registry=registry,
        )
        hit_ratio = Gauge(
            f"{_METRICS_PREFIX}_cache_hit_ratio", "Response cache hits / lookups since start.", registry=registry
        )
        hit_ratio.set_function(lambda: cache.stats.hit_ratio)


def build_pool_clients(
    router: PoolRouter, settings: FeaturesSettings, *, local: EngineClient, local_model: str
) -> dict[str, EngineClient]:
    """Pool name -> client: the local engine, or a remote endpoint with its own timeouts.
    Raises ValueError when a local pool names a model the local engine does not serve."""
    routing = settings.routing
    key = routing.remote_api_key.get_secret_value() if routing.remote_api_key else None
    clients: dict[str, EngineClient] = {}
    for index, pool in enumerate(router.pools):
        if pool.url is None:
            if pool.model != local_model:
                raise ValueError(
                    f"features.routing.pools[{index}].model: the local pool '{pool.name}' must serve the engine's "
                    f"--served-model-name '{local_model}', got '{pool.model}' (or give the pool a url)"
                )
            clients[pool.name] = local
        else:
            clients[pool.name] = HttpEngineClient(
                pool.url,
                name=f"pool-{pool.name}",
                connect_timeout_s=routing.remote_connect_timeout_s,
                read_timeout_s=routing.remote_read_timeout_s,
                max_connections=routing.remote_max_connections,
                api_key=key,
            )
    return clients


class FeatureChain:
    """Rate limits, routing, languages, cache and deadline around the gateway's forwarder."""

    def __init__(
        self,
        settings: FeaturesSettings,
        *,
        router: PoolRouter,
        engines: Mapping[str, EngineClient],
        registry: CollectorRegistry,
        max_tokens_cap: int,
    ) -> None:
        self.settings = settings
        self.router = router
        self.engines = dict(engines)
        self.max_tokens_cap = max_tokens_cap
        self.cache = ResponseCache.from_settings(settings.cache, registry=registry, namespace=_METRICS_PREFIX)
        self.limiter: RateLimiter | None = (
            rate_limiter_from_settings(settings.rate_limit) if settings.rate_limit.enabled else None
        )
        self.languages = LanguageCounter(registry, namespace=_METRICS_PREFIX)
        self.metrics = _FeatureMetrics(registry, self.cache)
        self._settling: set[asyncio.Task[None]] = set()  # streams' settlements, run as they end

    def check_model(self, model: str) -> None:
        """A 404 `model_not_found` ApiError unless a pool serves `model` (or it is an alias)."""
        try:
            self.router.check_model(model)
        except ModelNotFoundError as exc:
            raise ApiError(404, str(exc) + ".", param=exc.param, code=exc.code) from None

    async def aclose(self) -> None:
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        await self.cache.aclose()
        if self.limiter is not None:
            await self.limiter.aclose()
        for client in {id(c): c for name, c in self.engines.items() if self._is_remote(name)}.values():
            await client.aclose()

    def _is_remote(self, pool_name: str) -> bool:
        return any(p.name == pool_name and p.url is not None for p in self.router.pools)

    # ---------------------------------------------------------------------------------
    # The request path

    async def handle(self, request: Request, prepared: PreparedRequest, forward: Forward) -> Response:
        if prepared.endpoint is MODELS:
            return await self._models(prepared, forward)
        headers = request.headers
        try:
            deadline_s = request_deadline(headers, self.settings.fallback)
        except InvalidTimeoutHeaderError as exc:
            raise ApiError(400, str(exc), param=exc.header, code="invalid_header") from None
        api_key = prepared.api_key
        payload = prepared.payload
        endpoint = prepared.endpoint.kind
        assert endpoint is not None  # the model list was answered above
        reserved = estimate_tokens(payload, self.max_tokens_cap, endpoint=endpoint)
        limit = await self._admit(api_key, reserved)
        extra = limit.headers() if limit is not None else {}
        # Tokens this request is charged: what the engine reported using, 0 when it never ran
        # (a cache hit, a refusal), the whole reservation when the gateway cut it short (the
        # deadline, the engine time limit, the client leaving: what it generated is unknown).
        used = 0
        try:
            decision = self._choose_pool(payload)
            extra[MODEL_USED_HEADER] = decision.model
            self._apply_language(prepared)
            scope = key_id(api_key) if self.settings.cache.scope == "key" else None
            policy = cache_policy(endpoint, payload, headers, self.settings.cache, scope=scope)
            prepared.body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
            if policy.lookup and policy.key is not None:
                cached = await self.cache.get(policy.key)
                if cached is not None:
                    return self._from_cache(cached, prepared, CacheStatus.HIT, extra)
            engine = self.engines[decision.pool.name]
            if limit is not None and prepared.stream:
                prepared.on_stream_end = self._stream_settlement(api_key, reserved)
            try:
                outcome = await run_with_fallback(
                    _first_byte(forward(engine, prepared)),
                    deadline_s=deadline_s,
                    # A request that skipped the lookup (no-cache, no-store) gets no cached answer.
                    cache=self.cache if policy.lookup else None,
                    key=policy.key,
                )
            except RequestTimeoutError as exc:
                used = reserved
                self.metrics.deadline.labels("timeout").inc()
                raise ApiError(504, f"Request timed out: {exc}.", code=exc.code, headers=extra) from None
            except RequestCutError:
                used = reserved
                raise
            if outcome.cached is not None:
                used = reserved
                self.metrics.deadline.labels("fallback").inc()
                return self._from_cache(outcome.cached, prepared, CacheStatus.FALLBACK, extra)
            response = outcome.value
            assert response is not None
            if isinstance(response, StreamRelay):
                used = reserved  # settled when the stream ends (prepared.on_stream_end)
            elif response.status_code == 200:
                used = await self._store(response, policy.key if policy.store else None)
            response.headers.update({CACHE_HEADER: CacheStatus.MISS.value, **extra})
            return response
        finally:
            if limit is not None and used != reserved:
                await self._settle(api_key, reserved, used)

    def _stream_settlement(self, api_key: str, reserved: int) -> StreamEnd:
        """What a stream is charged when it ends: the engine's total when it ran to its end,
        else (cut by the client, the time limit, a failure) its whole reservation."""

        def ended(usage: dict[str, Any] | None, completed: bool) -> None:
            total = usage.get("total_tokens") if usage is not None else None
            used = total if completed and isinstance(total, int) and total >= 0 else reserved
            if used != reserved:
                self._spawn(self._settle(api_key, reserved, used))

        return ended

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _admit(self, api_key: str, tokens: int) -> RateLimitDecision | None:
        if self.limiter is None:
            return None
        decision = await self.limiter.acquire(api_key, tokens)
        if decision.allowed:
            return decision
        self.metrics.rate_limited.labels(decision.limited_by or "requests").inc()
        raise ApiError(
            429,
            decision.message[0].upper() + decision.message[1:] + ".",
            code="rate_limit_exceeded" if not decision.too_large else "request_too_large",
            headers=decision.headers(),
        )

    async def _settle(self, api_key: str, reserved: int, used: int) -> None:
        assert self.limiter is not None
        await self.limiter.settle(api_key, reserved, used)

    def _choose_pool(self, payload: dict[str, Any]) -> RouteDecision:
        # The gateway validated the model (check_model) before the chain runs.
        decision = self.router.route(payload.get("model"), request_text(payload))
        payload["model"] = decision.model
        intent = decision.intent.value if decision.intent is not None else "explicit"
        self.metrics.routing.labels(decision.pool.name, decision.model, intent).inc()
        return decision

    def _apply_language(self, prepared: PreparedRequest) -> None:
        payload = prepared.payload
        language = detect_language(request_text(payload))
        self.languages.observe(language)
        if prepared.endpoint is CHAT and self.settings.language.instruction_enabled:
            payload["messages"] = with_language_instruction(payload["messages"], language, self.settings.language)

    async def _store(self, response: Response, key: str | None) -> int:
        """Cache a complete answer (when `key`); returns the tokens it used."""
        try:
            body = json.loads(bytes(response.body))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return 0
        if not isinstance(body, dict):
            return 0
        if key is not None:
            await self.cache.put(key, body)
        usage = body.get("usage") or {}
        total = usage.get("total_tokens") if isinstance(usage, dict) else None
        return total if isinstance(total, int) else 0

    def _from_cache(
        self, cached: CachedResponse, prepared: PreparedRequest, status: CacheStatus, extra: dict[str, str]
    ) -> Response:
        headers = {CACHE_HEADER: status.value, **extra}
        if prepared.stream:
            events = replay_as_sse(cached.body, include_usage=not prepared.strip_usage)
            return StreamingResponse(_aiter(events), media_type="text/event-stream", headers=headers)
        body = json.dumps(cached.body, separators=(",", ":"), ensure_ascii=False).encode()
        return Response(body, media_type="application/json", headers=headers)

    async def _models(self, prepared: PreparedRequest, forward: Forward) -> Response:
        """The local engine's list, each model shown by its id (the engine's `root` is where
        the weights lie on its disk), plus (with pools configured) the remote pools' models
        and the routing aliases."""
        pool = next((p for p in self.router.pools if p.url is None), self.router.pools[0])
        response = await forward(self.engines[pool.name], prepared)
        if response.status_code != 200 or isinstance(response, StreamRelay):
            return response
        try:
            listing = json.loads(bytes(response.body))
            data = listing["data"]
            known = {entry.get("id") for entry in data}
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
            return response
        for entry in data:
            if "root" in entry:
                entry["root"] = entry.get("id")
        if self.settings.routing.pools:
            now = int(time.time())
            for name in self.router.model_names:
                if name not in known:
                    data.append({"id": name, "object": "model", "created": now, "owned_by": "llm-fleet"})
        body = json.dumps(listing, separators=(",", ":")).encode()
        headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length", "content-type")}
        return Response(body, status_code=200, media_type="application/json", headers=headers)


async def _first_byte(call: Awaitable[Response]) -> Response:
    """The engine's response; for a stream, only once its first chunk has arrived (the
    deadline covers the wait for the first token, then the stream is the client's)."""
    response = await call
    if not isinstance(response, StreamingResponse):
        return response
    iterator = aiter(response.body_iterator)
    try:
        first = await anext(iterator)
    except StopAsyncIteration:
        return response
    except BaseException:
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            await closer()
        raise
    response.body_iterator = _prepend(first, iterator)
    return response


async def _prepend(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        closer = getattr(rest, "aclose", None)
        if closer is not None:
            await closer()


async def _aiter(events: Iterator[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event
