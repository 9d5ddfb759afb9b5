"""The gateway's guards, checked without an engine."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from service.app import create_app
from service.engine_client import HttpEngineClient
from service.logs import JsonFormatter
from service.protocol import (
    MAX_JSON_DEPTH,
    InvalidJsonError,
    parse_json_object,
)
from service.settings import ServiceSettings
from service.supervisor import EngineSupervisor
from service.upstream import UpstreamResponse
from tests.service.helpers import free_port, wait_for

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
        wait_for(lambda: _ready(url), 30, "the in-process gateway")
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
