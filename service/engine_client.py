"""How the gateway talks to an OpenAI-compatible engine: an interface and its HTTP client.

`EngineClient` is the seam for pools: the local supervised vLLM and a remote endpoint are
both an `HttpEngineClient` with a different base URL; anything else that can open a
streamed upstream response, answer a 1-token probe and a warm-up can join.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

import httpx

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


def forwardable_headers(headers: httpx.Headers) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() not in _HOP_HEADERS}


class EngineUnavailableError(Exception):
    """The engine could not be reached or did not answer in time."""


@runtime_checkable
class EngineClient(Protocol):
    """An OpenAI-compatible upstream."""

    @property
    def name(self) -> str: ...

    @property
    def requests_sent(self) -> int:
        """Generation requests forwarded so far (probes and warm-up excluded)."""
        ...

    async def open(self, method: str, path: str, body: bytes, *, request_id: str) -> httpx.Response:
        """Send a request; the returned response is streamed and must be closed by the caller."""
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
        self._requests_sent = 0
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

    async def open(self, method: str, path: str, body: bytes, *, request_id: str) -> httpx.Response:
        headers = {"content-type": "application/json", "x-request-id": request_id, **self._auth}
        request = self._client.build_request(method, path, content=body or None, headers=headers)
        self._requests_sent += 1
        try:
            return await self._client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise EngineUnavailableError(f"engine {self._name} timed out") from exc
        except httpx.TransportError as exc:
            raise EngineUnavailableError(f"engine {self._name} unreachable: {type(exc).__name__}") from exc

    async def healthy(self, timeout_s: float) -> bool:
        try:
            response = await self._client.get("/health", timeout=timeout_s, headers=self._auth)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def generate_one_token(self, model: str, timeout_s: float) -> float:
        started = time.perf_counter()
        payload = {"model": model, "prompt": "ping", "max_tokens": 1, "temperature": 0}
        try:
            response = await self._client.post("/v1/completions", json=payload, timeout=timeout_s, headers=self._auth)
        except httpx.HTTPError as exc:
            raise EngineUnavailableError(f"probe failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise EngineUnavailableError(f"probe answered {response.status_code}")
        return time.perf_counter() - started

    async def aclose(self) -> None:
        await self._client.aclose()
