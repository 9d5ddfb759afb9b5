"""The gateway's guards without an engine: strict JSON, per-key slots, engine errors mapped to
the gateway's envelope, request bounds, and a 500 that carries its request id (the app under a
real uvicorn on 127.0.0.1, with an engine client that fails in a way nobody planned for)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from devkit.proc import free_port, wait_until
from service.api.errors import ApiError, engine_error
from service.api.protocol import (
    MAX_JSON_DEPTH,
    ChatCompletionRequest,
    CompletionRequest,
    InvalidJsonError,
    constraint_sizes,
    parse_json_object,
)
from service.config.features import FeaturesSettings
from service.config.settings import ServiceSettings
from service.engine.supervisor import EngineSupervisor
from service.http.app import create_app
from service.observability.logs import JsonFormatter
from service.pipeline.chain import FeatureChain
from service.pipeline.keyslots import KeySlots
from service.pipeline.pools import PoolRouter
from service.pipeline.ratelimit import Limits, MemoryRateLimiter
from service.upstream.client import HttpEngineClient
from service.upstream.pool import UpstreamResponse

# --- strict JSON ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[" * 5000 + b"]" * 5000, f"nested deeper than {MAX_JSON_DEPTH} levels"),
        (b'{"a": ' * (MAX_JSON_DEPTH + 1) + b"1" + b"}" * (MAX_JSON_DEPTH + 1), "nested deeper"),
        (b'{"n": ' + b"7" * 5000 + b"}", "an integer does not fit in 64 bits"),
        (b'{"n": 9223372036854775808}', "an integer does not fit in 64 bits"),
        (b'{"x": NaN}', "NaN is not a JSON value"),
        (b'{"x": -Infinity}', "-Infinity is not a JSON value"),
        (b'{"x": 1e400}', "a number is out of range"),
        (b'{"x": ["\\udfff"]}', "lone UTF-16 surrogate"),
        (b'{"\\ud800": 1}', "lone UTF-16 surrogate"),
        (b"\xc3\x28", "not UTF-8"),
        (b'["a"]', "expected a JSON object"),
        (b'{"a": ', "Expecting value"),
    ],
)
def test_pathological_json_is_refused(body: bytes, message: str) -> None:
    with pytest.raises(InvalidJsonError, match=message):
        parse_json_object(body)


def test_ordinary_json_passes() -> None:
    nested = b'{"a": ' * (MAX_JSON_DEPTH - 1) + b"1" + b"}" * (MAX_JSON_DEPTH - 1)
    assert parse_json_object(nested)["a"]["a"]
    assert parse_json_object(b'{"emoji": "\\ud83d\\ude00", "n": -9223372036854775808, "f": 1.5e300}') == {
        "emoji": "\U0001f600",
        "n": -(1 << 63),
        "f": 1.5e300,
    }


# --- request bounds ---------------------------------------------------------------------------


def test_sequences_count_n_best_of_and_prompts() -> None:
    assert CompletionRequest(model="m", prompt="x", n=3).sequences() == 3
    assert CompletionRequest(model="m", prompt="x", n=2, best_of=5).sequences() == 5
    assert CompletionRequest(model="m", prompt=["a", "b"], n=4).sequences() == 8
    assert CompletionRequest(model="m", prompt=[1, 2, 3]).sequences() == 1
    assert CompletionRequest(model="m", prompt=[[1], [2], [3]]).sequences() == 3
    assert ChatCompletionRequest(model="m", messages=[{"role": "user", "content": "x"}], n=6).sequences() == 6


def test_constraint_sizes() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    payload = {
        "structured_outputs": {"choice": ["yes", "no"]},
        "response_format": {"type": "text"},
        "guided_regex": "a+",
        "tools": tools,
    }
    sizes = constraint_sizes(payload)
    assert sizes == {"structured_outputs": 23, "response_format": 15, "guided_regex": 4}  # tools: not forced
    assert "tools" in constraint_sizes({**payload, "tool_choice": "required"})
    assert "tools" in constraint_sizes({**payload, "tool_choice": {"type": "function", "function": {"name": "f"}}})
    assert "tools" not in constraint_sizes({**payload, "tool_choice": "auto"})


# --- per-key slots ----------------------------------------------------------------------------


def test_key_slots() -> None:
    slots = KeySlots(2, retry_after_s=5)
    first, _second = slots.acquire("a"), slots.acquire("a")
    with pytest.raises(ApiError) as err:
        slots.acquire("a")
    assert (err.value.status, err.value.code, err.value.headers) == (429, "overloaded", {"Retry-After": "5"})
    slots.acquire("b")  # another key is not affected
    first()
    first()  # a second release changes nothing
    assert slots.held("a") == 1
    slots.acquire("a")
    assert slots.held("a") == 2


# --- engine errors ----------------------------------------------------------------------------

PYDANTIC = (
    "1 validation error:\n  {'type': 'bool_parsing', 'loc': ('body', 'logprobs'), 'msg': 'Input should be a valid "
    "boolean, unable to interpret input', 'input': 'xxxxxxxx'}\n    For further information visit "
    "https://errors.pydantic.dev/2.12/v/bool_parsing"
)


def _vllm(message: str, param: str | None = None, code: int = 400) -> bytes:
    return json.dumps({"error": {"message": message, "type": "BadRequestError", "param": param, "code": code}}).encode()


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            _vllm("temperature must be non-negative, got -1.0.", "temperature"),
            (400, "invalid_value", "temperature", "temperature must be non-negative, got -1.0."),
        ),
        (
            400,
            _vllm(PYDANTIC, "body.logprobs"),
            (400, "invalid_value", "logprobs", "logprobs: Input should be a valid boolean, unable to interpret input"),
        ),
        (
            400,
            _vllm("This model's maximum context length is 4096 tokens. However, you requested 5000 tokens."),
            (400, "context_length_exceeded", None, None),
        ),
        (
            400,
            _vllm("could not fetch http://127.0.0.1:8001/x from 10.0.3.7:9000 for /models/qwen-local"),
            (400, "invalid_value", None, "could not fetch the engine from the engine for the model"),
        ),
        (422, b'{"detail": "Unprocessable"}', (400, "invalid_value", None, "Unprocessable")),
        (404, b'{"detail": "Not Found"}', (404, "not_found", None, "Not Found")),
        (400, b"not json", (400, "invalid_value", None, "The engine rejected the request (HTTP 400).")),
        (500, _vllm("Traceback (most recent call last): ...", code=500), (502, "engine_error", None, None)),
        (401, _vllm("bad key for pool", code=401), (502, "engine_error", None, None)),
    ],
    ids=["plain", "pydantic", "context", "addresses", "fastapi", "not-found", "not-json", "crash", "pool-auth"],
)
def test_engine_errors_are_mapped(status: int, body: bytes, expected: tuple[int, str, str | None, str | None]) -> None:
    error = engine_error(status, body, hide=("/models/qwen-local",))
    want_status, want_code, want_param, want_message = expected
    assert (error.status, error.code, error.param) == (want_status, want_code, want_param)
    assert isinstance(error.envelope()["error"]["code"], str)
    if want_message is not None:
        assert error.message == want_message
    assert "127.0.0.1" not in error.message
    assert "pydantic" not in error.message
    assert "Traceback" not in error.message
    assert len(error.message) <= 300


def test_a_long_engine_message_is_cut() -> None:
    assert len(engine_error(400, _vllm("x " * 5000)).message) == 300


# --- a 500 carries its request id ---------------------------------------------------------------


class _BrokenEngine(HttpEngineClient):
    """Healthy to the supervisor; every forwarded request hits a bug (an exception nobody maps)."""

    async def healthy(self, timeout_s: float) -> bool:
        return True

    async def generate_one_token(self, model: str, timeout_s: float) -> float:
        return 0.001

    async def open(self, method: str, path: str, body: bytes, *, request_id: str) -> UpstreamResponse:
        raise RuntimeError("a bug in the gateway")


@contextmanager
def _served(settings: ServiceSettings) -> Iterator[str]:
    engine = EngineSupervisor(settings, _BrokenEngine("http://127.0.0.1:9"), process=None)
    app = create_app(settings, engine=engine)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url), 30, "the in-process gateway")
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/health/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_internal_error_is_a_500_with_its_request_id() -> None:
    settings = ServiceSettings(engine_url="http://127.0.0.1:9", served_model_name="tiny", api_keys="k")
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("service.access")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with _served(settings) as url:
            response = httpx.post(
                url + "/v1/completions",
                json={"model": "tiny", "prompt": "x", "max_tokens": 1},
                headers={"authorization": "Bearer k", "x-request-id": "req-500.check"},
                timeout=10,
            )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "req-500.check"
    assert response.json() == {
        "error": {
            "message": "Internal error in the gateway.",
            "type": "internal_server_error",
            "param": None,
            "code": "internal_error",
        }
    }
    entries = [json.loads(line) for line in lines.getvalue().splitlines()]
    unhandled = [e for e in entries if e["msg"] == "unhandled error"]
    assert unhandled, entries
    assert unhandled[0]["request_id"] == "req-500.check"
    assert "a bug in the gateway" in unhandled[0]["exc"]
    assert any(e["msg"] == "request" and e["status"] == 500 and e["request_id"] == "req-500.check" for e in entries)


def test_a_stream_is_charged_its_usage_or_its_reservation() -> None:
    """A stream that ran to its end is charged the engine's total; one that was cut keeps its
    whole reservation (what the engine generated is unknown). Settlements run as tasks that
    closing the chain waits for."""
    settings = FeaturesSettings()
    router = PoolRouter.from_settings(settings.routing, local_model="tiny")
    client = HttpEngineClient("http://127.0.0.1:9")
    chain = FeatureChain(
        settings, router=router, engines={"local": client}, registry=CollectorRegistry(), max_tokens_cap=100
    )
    limiter = MemoryRateLimiter(Limits(100, 1000), clock=lambda: 0.0)  # a clock that never refills
    chain.limiter = limiter

    async def scenario() -> tuple[int, int]:
        await limiter.acquire("done", 150)
        await limiter.acquire("cut", 150)
        chain._stream_settlement("done", 150)({"total_tokens": 40}, True)
        chain._stream_settlement("cut", 150)({"total_tokens": 40}, False)
        await asyncio.gather(*chain._settling)
        done, cut = await limiter.acquire("done", 0), await limiter.acquire("cut", 0)
        await client.aclose()
        return done.remaining_tokens, cut.remaining_tokens

    assert asyncio.run(scenario()) == (1000 - 40, 1000 - 150)
