"""A steady load through the local load balancer: concurrent openai SDK clients, some streaming.

The clients never retry (`max_retries=0`): every failure the load balancer lets through is
counted. The load runs on its own asyncio loop in a background thread, so the test keeps its
hands free to kill, drain and poll while requests flow.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import openai

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# Error codes the gateway puts in a stream that broke after its 200 (the engine went away).
RETRYABLE_STREAM_CODES = frozenset({"engine_unavailable", "draining"})


@dataclass(frozen=True)
class Outcome:
    started: float  # time.monotonic()
    ended: float
    stream: bool
    ok: bool
    status: int  # HTTP status; 200 for a stream that broke in-band; 0 for no response at all
    code: str | None = None  # the OpenAI error code, or "truncated" for a stream without its end
    detail: str = ""

    @property
    def retryable(self) -> bool:
        if self.ok:
            return True
        if self.status in RETRYABLE_STATUS:
            return True
        return self.status in (0, 200) and (self.code in RETRYABLE_STREAM_CODES or self.status == 0)


@dataclass
class LoadReport:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [outcome for outcome in self.outcomes if not outcome.ok]

    @property
    def streams(self) -> int:
        return sum(outcome.stream for outcome in self.outcomes)

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for outcome in self.failures:
            key = f"{outcome.status}/{outcome.code}"
            kinds[key] = kinds.get(key, 0) + 1
        return f"sent={self.sent} streams={self.streams} failed={len(self.failures)} {kinds or ''}".strip()


class LoadGenerator:
    """`clients` workers in a loop; every `stream_every`-th worker streams."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        model: str,
        clients: int = 4,
        stream_every: int = 2,
        max_tokens: int = 24,
        timeout_s: float = 120.0,
    ) -> None:
        self._base_url = base_url.rstrip("/") + "/v1"
        self._api_key = api_key
        self._model = model
        self._clients = clients
        self._stream_every = stream_every
        self._max_tokens = max_tokens
        self._timeout_s = timeout_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._outcomes: list[Outcome] = []
        self._error: BaseException | None = None

    def __enter__(self) -> LoadGenerator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 150.0) -> LoadReport:
        """Stop issuing requests, let the ones in flight end, return every outcome."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                raise AssertionError(f"load generator did not stop within {timeout_s} s")
        if self._error is not None:
            raise AssertionError(f"load generator crashed: {self._error!r}") from self._error
        return self.report()

    def report(self) -> LoadReport:
        with self._lock:
            return LoadReport(list(self._outcomes))

    def wait_for(self, successes: int, timeout_s: float) -> None:
        """Until `successes` requests have succeeded (proves the load flows before a fault)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if sum(outcome.ok for outcome in self.report().outcomes) >= successes:
                return
            time.sleep(0.1)
        raise AssertionError(f"load: fewer than {successes} successes in {timeout_s} s: {self.report().summary()}")

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced by stop()
            self._error = exc

    async def _main(self) -> None:
        client = openai.AsyncOpenAI(
            base_url=self._base_url, api_key=self._api_key, max_retries=0, timeout=self._timeout_s
        )
        async with client:
            workers = [
                asyncio.create_task(self._worker(client, stream=(index % self._stream_every == 1)))
                for index in range(self._clients)
            ]
            await asyncio.gather(*workers)

    async def _worker(self, client: openai.AsyncOpenAI, *, stream: bool) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            outcome = await self._one(client, stream=stream, number=number)
            with self._lock:
                self._outcomes.append(outcome)
            if not outcome.ok:
                await asyncio.sleep(0.05)  # a client backs off a little after an error

    async def _one(self, client: openai.AsyncOpenAI, *, stream: bool, number: int) -> Outcome:
        messages: list[openai.types.chat.ChatCompletionMessageParam] = [
            {"role": "user", "content": f"Request {number}: tell me about load balancers."}
        ]
        started = time.monotonic()

        def done(ok: bool, status: int, code: str | None = None, detail: str = "") -> Outcome:
            return Outcome(started, time.monotonic(), stream, ok, status, code, detail)

        try:
            if stream:
                finished = False
                events = await client.chat.completions.create(
                    model=self._model, messages=messages, max_tokens=self._max_tokens, stream=True
                )
                async for chunk in events:
                    if chunk.choices and chunk.choices[0].finish_reason is not None:
                        finished = True
                if not finished:
                    return done(False, 200, "truncated", "stream ended without a finish_reason")
                return done(True, 200)
            completion = await client.chat.completions.create(
                model=self._model, messages=messages, max_tokens=self._max_tokens
            )
            if not completion.choices or completion.choices[0].message.content is None:
                return done(False, 200, "empty", "no choices / content")
            return done(True, 200)
        except openai.APIStatusError as exc:
            return done(False, exc.status_code, exc.code, str(exc)[:200])
        except openai.APIConnectionError as exc:
            return done(False, 0, "connection", f"{type(exc).__name__}: {exc}"[:200])
        except openai.APIError as exc:  # an error event inside a stream that started with 200
            return done(False, 200, exc.code, str(exc)[:200])
