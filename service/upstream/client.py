"""How the gateway talks to an OpenAI-compatible engine: an interface and its HTTP client.

`EngineClient` is the seam for pools: the local supervised vLLM and a remote endpoint are
both an `HttpEngineClient` with a different base URL; anything else that can open a
streamed upstream response, answer a 1-token probe and a warm-up can join.

Forwarded requests (the hot path) go through `UpstreamPool` (asyncio + httptools); the
occasional health checks, probes and warm-ups use an httpx client.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import httpx

from contract.facts import COMPLETIONS_PATH
from service.observability.logs import REQUEST_ID_HEADER
from service.upstream.pool import UpstreamError, UpstreamPool, UpstreamResponse, UpstreamTimeoutError

ENGINE_HEALTH_PATH = "/health"  # the engine's own liveness route (vLLM's and any OpenAI-compatible server's)
_REQUEST_ID_LINE = REQUEST_ID_HEADER.encode() + b": "
# Hop-by-hop and transport headers that must not be copied between the two connections.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "host",
        "authorization",
        "date",
        "server",
    }
)
_HOP_HEADER_BYTES = frozenset(name.encode() for name in _HOP_HEADERS)


def forwardable_headers(raw_headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The engine's response headers a client may see (lower-case names, as ASGI wants them)."""
    return [(name, value) for name, value in raw_headers if name not in _HOP_HEADER_BYTES]


class EngineUnavailableError(Exception):
    """The engine could not be reached or did not answer in time. `request_sent` is False
    when the request never reached it (safe to retry on another instance)."""

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message)
        self.request_sent = request_sent


@runtime_checkable
class EngineClient(Protocol):
    """An OpenAI-compatible upstream."""

    @property
    def name(self) -> str: ...

    @property
    def requests_sent(self) -> int:
        """Generation requests forwarded so far (probes and warm-up excluded)."""
        ...

    async def open(self, method: str, path: str, body: bytes, *, request_id: str) -> UpstreamResponse:
        """Send a request; returns at the headers. The caller reads the body and must `aclose()` it.

        Raises EngineUnavailableError when nothing came back (unreachable, timed out, closed)."""
        ...

    async def healthy(self, timeout_s: float) -> bool:
        """The engine's own liveness route answers 200."""
        ...

    async def generate_one_token(self, model: str, timeout_s: float) -> float:
        """A 1-token completion; returns its latency in seconds, raises EngineUnavailableError."""
        ...

    async def aclose(self) -> None: ...


class HttpEngineClient:
    """One shared pooled `httpx.AsyncClient` to an engine's base URL."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str = "local",
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 300.0,
        max_connections: int = 1024,
        api_key: str | None = None,
    ) -> None:
        self._name = name
        self._base_url = base_url.rstrip("/")
        self._auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._forward_headers = b"content-type: application/json\r\n" + (
            f"authorization: Bearer {api_key}\r\n".encode() if api_key else b""
        )
        self._requests_sent = 0
        self._pool = UpstreamPool(
            self._base_url,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            max_connections=max_connections,
            keepalive_expiry_s=4.0,
        )
        self._client = httpx.AsyncClient(
            base_url=self._base_url,
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s, pool=connect_timeout_s),
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                # Below the engine's keep-alive (uvicorn: 5 s) so a pooled connection is never
                # reused just as the engine closes it (a ReadError on the next request).
                keepalive_expiry=4.0,
            ),
            trust_env=False,
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def requests_sent(self) -> int:
        return self._requests_sent

    def rebase(self, base_url: str) -> None:
        """Point at a restarted engine (new port); pooled connections to the old one drop."""
        self._base_url = base_url.rstrip("/")
        self._client.base_url = httpx.URL(self._base_url)
        self._pool.rebase(self._base_url)

    async def open(self, method: str, path: str, body: bytes, *, request_id: str) -> UpstreamResponse:
        # request_id matches [A-Za-z0-9._:-]{1,128} (service.observability.logs): safe in a header line.
        headers = self._forward_headers + _REQUEST_ID_LINE + request_id.encode() + b"\r\n"
        self._requests_sent += 1
        try:
            return await self._pool.request(method, path, body, headers)
        except UpstreamTimeoutError as exc:
            raise EngineUnavailableError(f"engine {self._name} timed out", request_sent=exc.request_sent) from exc
        except UpstreamError as exc:
            raise EngineUnavailableError(
                f"engine {self._name} unreachable: {exc}", request_sent=exc.request_sent
            ) from exc

    async def healthy(self, timeout_s: float) -> bool:
        try:
            response = await self._client.get(ENGINE_HEALTH_PATH, timeout=timeout_s, headers=self._auth)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def generate_one_token(self, model: str, timeout_s: float) -> float:
        started = time.perf_counter()
        payload = {"model": model, "prompt": "ping", "max_tokens": 1, "temperature": 0}
        try:
            response = await self._client.post(COMPLETIONS_PATH, json=payload, timeout=timeout_s, headers=self._auth)
        except httpx.HTTPError as exc:
            raise EngineUnavailableError(f"probe failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise EngineUnavailableError(f"probe answered {response.status_code}")
        return time.perf_counter() - started

    async def aclose(self) -> None:
        await self._pool.aclose()
        await self._client.aclose()
