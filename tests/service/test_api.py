"""The public API through the gateway, driven by the official openai SDK against real vLLM."""

from __future__ import annotations

import httpx
import openai
import pytest

from devkit.proc import wait_until
from tests.service.helpers import API_KEY, METRICS_TOKEN, SERVED, Gateway, metric_value

pytestmark = [pytest.mark.engine, pytest.mark.slow]

CHAT = [{"role": "user", "content": "Say hello."}]


def test_chat_completion(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=SERVED, messages=CHAT, max_tokens=8, temperature=0, extra_headers={"x-request-id": "req-abc.123"}
    )
    assert raw.headers["x-request-id"] == "req-abc.123"
    completion = raw.parse()
    assert completion.model == SERVED
    assert completion.choices[0].message.role == "assistant"
    assert completion.usage is not None
    assert 1 <= completion.usage.completion_tokens <= 8


def test_chat_passes_openai_parameters_through(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model=SERVED, messages=CHAT, max_tokens=6, n=2, seed=7, temperature=0.8, top_p=0.9, logprobs=True
    )
    assert len(completion.choices) == 2
    assert completion.choices[0].logprobs is not None


def test_chat_stream_without_usage(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model=SERVED, messages=CHAT, max_tokens=8, stream=True))
    assert chunks, "no chunks"
    assert all(chunk.choices for chunk in chunks), "the gateway's own usage chunk leaked to the client"
    assert chunks[-1].choices[0].finish_reason in {"length", "stop"}


def test_chat_stream_with_usage(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=SERVED, messages=CHAT, max_tokens=8, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens >= 1


def test_completion(client: openai.OpenAI) -> None:
    completion = client.completions.create(model=SERVED, prompt="Once upon a time", max_tokens=5)
    assert completion.choices[0].text is not None
    assert completion.usage is not None
    assert completion.usage.completion_tokens >= 1


def test_completion_stream(client: openai.OpenAI) -> None:
    texts = [
        c.choices[0].text for c in client.completions.create(model=SERVED, prompt="a b c", max_tokens=5, stream=True)
    ]
    assert texts


def test_models(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == [SERVED]


@pytest.mark.parametrize("path", ["/tokenize", "/version", "/v1/embeddings", "/pooling", "/docs", "/openapi.json"])
def test_other_engine_routes_unreachable(raw: httpx.Client, path: str) -> None:
    response = raw.post(path, json={"model": SERVED, "prompt": "x"}) if path != "/docs" else raw.get(path)
    assert response.status_code in {404, 405}
    assert "error" in response.json()


def test_metrics_need_the_token(supervised: Gateway, client: openai.OpenAI) -> None:
    client.completions.create(model=SERVED, prompt="count me", max_tokens=3)
    assert httpx.get(supervised.url + "/metrics").status_code == 401
    assert httpx.get(supervised.url + "/metrics", headers={"authorization": f"Bearer {API_KEY}"}).status_code == 401
    text = httpx.get(supervised.url + "/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"}).text
    assert metric_value(text, "llm_gateway_request_duration_seconds_count", route="/v1/completions", status="200") >= 1
    assert metric_value(text, "llm_gateway_completion_tokens_total", route="/v1/completions") >= 1
    assert metric_value(text, "llm_gateway_prompt_tokens_total", route="/v1/chat/completions") >= 1
    assert metric_value(text, "llm_gateway_time_to_first_token_seconds_count", route="/v1/chat/completions") >= 1
    assert metric_value(text, "llm_gateway_ready") == 1
    assert metric_value(text, "llm_gateway_draining") == 0
    assert "llm_gateway_requests_in_flight" in text
    assert "llm_gateway_engine_restarts_total" in text
    assert "llm_gateway_gpu_" not in text  # no NVML on this machine: absent, not an error


def test_health_bodies(supervised: Gateway) -> None:
    ready = supervised.health("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert supervised.health("/health").status_code == 200
    live = supervised.health("/health/live")
    assert live.status_code == 200
    assert live.json()["live"] is True


def test_client_disconnect_aborts_the_engine_request(supervised: Gateway, engine_url: str) -> None:
    """A client that goes away mid-stream frees its slot at once: the engine stops generating."""

    def engine_metric(name: str) -> float:
        return metric_value(httpx.get(engine_url + "/metrics", timeout=10).text, name)

    tokens = 500
    body = {"model": SERVED, "prompt": "endless", "max_tokens": tokens, "stream": True, "ignore_eos": True}
    headers = {"authorization": f"Bearer {API_KEY}"}
    generated_before = engine_metric("vllm:generation_tokens_total")
    with (
        httpx.Client(base_url=supervised.url, headers=headers, timeout=60) as http,
        http.stream("POST", "/v1/completions", json=body) as response,
    ):
        assert response.status_code == 200
        next(response.iter_raw())  # the engine is generating for us now
    wait_until(lambda: supervised.health().json()["in_flight"] == 0, 30, "the gateway to drop the stream")
    wait_until(lambda: engine_metric("vllm:num_requests_running") == 0, 30, "the engine to end the request")
    generated = engine_metric("vllm:generation_tokens_total") - generated_before
    # Had the stream run on, the engine would have generated all of them (plus 1-token probes).
    assert generated < tokens / 2, f"the engine generated {generated} tokens for a client that left"
