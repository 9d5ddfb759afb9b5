"""Bad requests: the right status, a clear message, the SDK's typed exception, and none of them
reaches the engine (vLLM's own per-route HTTP counters do not move)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from devkit.proc import free_port, http_status, wait_until
from tests.service.helpers import API_KEY, SERVED, Gateway, metric_value

pytestmark = [pytest.mark.engine, pytest.mark.slow]

CHAT = [{"role": "user", "content": "hi"}]


def engine_counts(engine_url: str) -> tuple[float, float]:
    """(all chat requests, non-2xx completions requests) as vLLM itself counted them.

    The supervisor's 1-token probes are successful /v1/completions requests, so only the
    failed ones of that route are comparable; every chat request counts.
    """
    text = httpx.get(engine_url + "/metrics", timeout=10).text
    chat = metric_value(text, "http_requests_total", handler="/v1/chat/completions")
    failed = metric_value(text, "http_requests_total", handler="/v1/completions") - metric_value(
        text, "http_requests_total", handler="/v1/completions", status="2xx"
    )
    return chat, failed


@pytest.fixture
def untouched_engine(engine_url: str) -> Iterator[None]:
    before = engine_counts(engine_url)
    yield
    assert engine_counts(engine_url) == before, "a rejected request reached the engine"


def sdk(gateway: Gateway, key: str = API_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=60)


@pytest.mark.usefixtures("untouched_engine")
class TestRejectedBeforeTheEngine:
    def test_wrong_key(self, supervised: Gateway) -> None:
        with pytest.raises(openai.AuthenticationError, match="Incorrect API key"):
            sdk(supervised, key="sk-wrong").chat.completions.create(model=SERVED, messages=CHAT)

    def test_missing_key(self, raw: httpx.Client) -> None:
        response = raw.post(
            "/v1/chat/completions", json={"model": SERVED, "messages": CHAT}, headers={"authorization": ""}
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "missing_api_key"

    def test_models_need_a_key_too(self, supervised: Gateway) -> None:
        with pytest.raises(openai.AuthenticationError):
            sdk(supervised, key="sk-wrong").models.list()

    def test_unknown_model(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.NotFoundError, match="'gpt-9' does not exist") as caught:
            client.chat.completions.create(model="gpt-9", messages=CHAT)
        assert caught.value.body["param"] == "model"  # type: ignore[index]

    def test_max_tokens_above_cap(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.BadRequestError, match="max_tokens is 100000; the maximum is 512"):
            client.completions.create(model=SERVED, prompt="x", max_tokens=100_000)

    def test_max_completion_tokens_above_cap(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.BadRequestError, match="max_completion_tokens"):
            client.chat.completions.create(model=SERVED, messages=CHAT, max_completion_tokens=513)

    @pytest.mark.parametrize(
        ("body", "param"),
        [
            ({"model": SERVED, "messages": "hello"}, "messages"),
            ({"model": SERVED, "messages": []}, "messages"),
            ({"model": SERVED, "messages": CHAT, "max_tokens": "ten"}, "max_tokens"),
            ({"model": SERVED, "messages": CHAT, "stream": "yes"}, "stream"),
            ({"model": 7, "messages": CHAT}, "model"),
            ({"messages": CHAT}, "model"),
        ],
    )
    def test_wrong_types(self, client: openai.OpenAI, body: dict[str, object], param: str) -> None:
        with pytest.raises(openai.BadRequestError) as caught:
            client.post("/chat/completions", body=body, cast_to=httpx.Response)
        assert caught.value.status_code == 400
        error = caught.value.body
        assert isinstance(error, dict)
        assert error["param"].startswith(param)
        assert param in error["message"]

    def test_invalid_json(self, raw: httpx.Client) -> None:
        response = raw.post(
            "/v1/completions", content=b'{"model": "tiny", "prompt": ', headers={"content-type": "application/json"}
        )
        assert response.status_code == 400
        assert response.json()["error"]["message"].startswith("Invalid JSON body")

    def test_body_not_an_object(self, raw: httpx.Client) -> None:
        response = raw.post("/v1/completions", json=["tiny"])
        assert response.status_code == 400

    def test_oversize_body(self, client: openai.OpenAI) -> None:
        with pytest.raises(openai.APIStatusError, match="exceeds") as caught:
            client.completions.create(model=SERVED, prompt="x" * 2_000_000, max_tokens=1)
        assert caught.value.status_code == 413

    def test_oversize_body_without_length(self, raw: httpx.Client) -> None:
        def chunks() -> Iterator[bytes]:
            yield b'{"model": "tiny", "prompt": "'
            for _ in range(40):
                yield b"y" * 65536
            yield b'"}'

        response = raw.post("/v1/completions", content=chunks())
        assert response.status_code == 413


def test_overload_is_a_rate_limit(attach: Callable[..., Gateway]) -> None:
    gateway = attach("--max-in-flight", "1", name="overload")
    gateway.wait_ready(60)
    client = sdk(gateway)
    stream = client.completions.create(
        model=SERVED, prompt="hold", max_tokens=200, stream=True, extra_body={"ignore_eos": True}
    )
    try:
        next(iter(stream))  # the first request is now in flight
        with pytest.raises(openai.RateLimitError, match="Too many requests"):
            client.completions.create(model=SERVED, prompt="x", max_tokens=1)
    finally:
        stream.close()


def test_engine_unavailable_is_a_server_error(attach: Callable[..., Gateway]) -> None:
    gateway = attach(name="nowhere", engine=f"http://127.0.0.1:{free_port()}")
    wait_until(lambda: http_status(gateway.url + "/health/ready") == 503, 60, "the gateway to answer")
    assert gateway.health().json()["engine"] == "starting"
    with pytest.raises(openai.InternalServerError, match="Engine not ready") as caught:
        sdk(gateway).completions.create(model=SERVED, prompt="x", max_tokens=1)
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "5"
