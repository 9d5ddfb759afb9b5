"""Abuse resistance through the running gateway, against the session's real vLLM: what an attack
on an instance found (streams outside the token budget, unbounded metric labels, slow clients
holding every slot, estimates the engine does not obey, unbounded `n` and constraints, work for
clients that left, 5xx on odd JSON, engine internals in errors, redirects, key-file surprises,
a cache shared across keys), each closed and checked here."""

from __future__ import annotations

import json
import math
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from devkit.proc import wait_until
from service.http.routes import KNOWN_PATHS
from tests.service.features_helpers import feature_env, feature_gateway, gateway_metric
from tests.service.helpers import API_KEY, METRICS_TOKEN, SERVED, TINY_MODEL, Gateway, metric_value

pytestmark = [pytest.mark.engine, pytest.mark.slow]

OTHER_KEY = "sk-abuse-other-key"
TOKENS_PER_MINUTE = 400  # the limited gateway's budget: a few hundred tokens tell a charge from a refund


def client_for(gateway: Gateway, key: str = API_KEY, timeout: float = 120) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=timeout)


def engine_metric(engine_url: str, name: str) -> float:
    return metric_value(httpx.get(engine_url + "/metrics", timeout=10).text, name)


def auth(key: str = API_KEY) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def log_entries(gateway: Gateway) -> list[dict[str, object]]:
    """The gateway's JSON log lines (one object per line; other lines skipped)."""
    entries = []
    for line in gateway.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return entries


@pytest.fixture(scope="module")
def general(engine_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """Default abuse settings, a second key, and deadlines down to 1 ms (for the fallback)."""
    env = feature_env(fallback__min_timeout_s=0.001)
    tmp = tmp_path_factory.mktemp("general")
    with feature_gateway(tmp, engine_url, "--api-keys", OTHER_KEY, name="general", env=env) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def limited(engine_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A small tokens-per-minute budget; each test spends it with its own key."""
    env = feature_env(rate_limit__tokens_per_minute=TOKENS_PER_MINUTE, rate_limit__requests_per_minute=1000)
    keys = ",".join(f"sk-limited-{name}" for name in ("stream", "cut", "bounds", "batch"))
    tmp = tmp_path_factory.mktemp("limited")
    with feature_gateway(tmp, engine_url, "--api-keys", keys, name="limited", env=env) as gateway:
        yield gateway


# --- High: streams are charged what they generate -----------------------------------------


def _remaining_tokens(client: openai.OpenAI) -> int:
    """The key's token bucket after a 1-token request (costs 2: one prompt token, one to generate)."""
    raw = client.completions.with_raw_response.create(model=SERVED, prompt="x", max_tokens=1)
    return int(raw.headers["x-ratelimit-remaining-tokens"])


def _refill(seconds: float) -> int:
    return math.ceil(seconds * TOKENS_PER_MINUTE / 60)


STREAM_TOKENS = 300


def test_a_stream_is_charged_what_it_generated(limited: Gateway) -> None:
    client = client_for(limited, "sk-limited-stream")
    raw = client.completions.with_raw_response.create(
        model=SERVED, prompt="stream me", max_tokens=STREAM_TOKENS, stream=True, extra_body={"ignore_eos": True}
    )
    started = time.monotonic()
    after_reservation = int(raw.headers["x-ratelimit-remaining-tokens"])
    chunks = list(raw.parse())
    assert chunks[-1].choices[0].finish_reason == "length"
    left = _remaining_tokens(client)
    # Charged: the bucket is where the reservation left it, plus what a minute's rate refilled
    # meanwhile (and the prompt estimate's error). Refunded, it would hold STREAM_TOKENS more.
    bound = after_reservation + _refill(time.monotonic() - started) + 8
    assert bound < TOKENS_PER_MINUTE - 50, f"too slow for this check to tell a charge from a refund: {bound}"
    assert left <= bound, f"the stream was not charged: {left} tokens left, at most {bound} expected"


def test_a_stream_cut_by_its_client_keeps_its_reservation(limited: Gateway) -> None:
    client = client_for(limited, "sk-limited-cut")
    body = {"model": SERVED, "prompt": "cut me", "max_tokens": STREAM_TOKENS, "stream": True, "ignore_eos": True}
    with (
        httpx.Client(base_url=limited.url, headers=auth("sk-limited-cut"), timeout=60) as http,
        http.stream("POST", "/v1/completions", json=body) as response,
    ):
        assert response.status_code == 200
        started = time.monotonic()
        after_reservation = int(response.headers["x-ratelimit-remaining-tokens"])
        next(response.iter_raw())  # generating; now leave
    wait_until(lambda: limited.health().json()["in_flight"] == 0, 30, "the gateway to drop the stream")
    left = _remaining_tokens(client)
    bound = after_reservation + _refill(time.monotonic() - started) + 2
    assert bound < TOKENS_PER_MINUTE - 50, f"too slow for this check to tell a charge from a refund: {bound}"
    assert left <= bound, f"leaving mid-stream refunded the reservation: {left} tokens left, at most {bound}"


# --- High: metric labels come from a fixed set --------------------------------------------


def test_unknown_paths_share_one_metric_label(general: Gateway) -> None:
    with httpx.Client(base_url=general.url, timeout=10) as http:
        for index in range(150):
            http.get(f"/health/probe-{index}")
            http.post(f"/v1/chat/completions/x{index}", content=b"{}")
            http.get(f"/nothing-{index}")
    text = httpx.get(general.url + "/metrics", headers=auth(METRICS_TOKEN), timeout=10).text
    routes = {
        line.split('route="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("llm_gateway_request_duration_seconds_count{")
    }
    assert routes <= KNOWN_PATHS | {"other"}, sorted(routes - KNOWN_PATHS)[:5]
    assert metric_value(text, "llm_gateway_request_duration_seconds_count", route="other") >= 450


# --- High: a slow client holds neither every slot nor a connection for long ---------------


@pytest.fixture(scope="module")
def guarded(engine_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    args = ("--max-in-flight", "4", "--max-in-flight-per-key", "2", "--body-timeout-s", "2", "--header-timeout-s", "1")
    tmp = tmp_path_factory.mktemp("guarded")
    with feature_gateway(tmp, engine_url, *args, "--api-keys", OTHER_KEY, name="guarded") as gateway:
        yield gateway


def _slow_body(gateway: Gateway, key: str) -> socket.socket:
    """A completion that announces 100 kB and sends one byte of it."""
    sock = socket.create_connection(("127.0.0.1", gateway.port), timeout=15)
    head = (
        f"POST /v1/completions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {key}\r\n"
        "content-type: application/json\r\ncontent-length: 100000\r\n\r\n{"
    )
    sock.sendall(head.encode())
    return sock


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    """Status and everything until the server closes the connection (bounded by the socket timeout)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return int(data.split(b" ", 2)[1]) if data else 0, data


def test_slow_bodies_of_one_key_leave_the_instance_to_the_others(guarded: Gateway) -> None:
    slow = [_slow_body(guarded, API_KEY) for _ in range(6)]
    try:
        time.sleep(0.5)  # every slow request is in the gateway now
        other = client_for(guarded, OTHER_KEY).completions.create(model=SERVED, prompt="still served", max_tokens=1)
        assert other.choices
        started = time.monotonic()
        statuses = sorted(_answer(sock)[0] for sock in slow)
        # Two held their key's slots until the body deadline; the others never got one.
        assert statuses == [408, 408, 429, 429, 429, 429]
        assert time.monotonic() - started < 10
    finally:
        for sock in slow:
            sock.close()


def test_slow_headers_are_cut_off(guarded: Gateway) -> None:
    socks = []
    for _ in range(50):
        sock = socket.create_connection(("127.0.0.1", guarded.port), timeout=15)
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nhost: 127.0.0.1\r\n")  # and never the blank line
        socks.append(sock)
    started = time.monotonic()
    answers = [_answer(sock) for sock in socks]
    assert {status for status, _ in answers} == {408}
    assert time.monotonic() - started < 10
    assert b'"code": "request_timeout"' in answers[0][1]


def test_a_kept_alive_connection_may_idle_longer_than_the_header_timeout(guarded: Gateway) -> None:
    with httpx.Client(base_url=guarded.url, headers=auth(), timeout=30) as http:
        assert http.get("/v1/models").status_code == 200
        time.sleep(2.5)  # idle between requests is the keep-alive timeout's business
        assert http.get("/v1/models").status_code == 200


# --- Medium: the estimate reads what the engine obeys; n is capped and charged ------------


def test_completions_are_estimated_by_the_max_tokens_the_engine_obeys(limited: Gateway) -> None:
    client = client_for(limited, "sk-limited-bounds")
    with pytest.raises(openai.RateLimitError) as err:
        # vLLM's completions ignore max_completion_tokens: 450 tokens, more than a minute's budget.
        client.completions.create(model=SERVED, prompt="x", max_tokens=450, extra_body={"max_completion_tokens": 1})
    assert err.value.response.json()["error"]["code"] == "request_too_large"
    # The client's max_completion_tokens alone bounds a completion (the engine's default would not).
    answer = client.completions.create(
        model=SERVED, prompt="x", extra_body={"max_completion_tokens": 3, "ignore_eos": True}
    )
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 3


def test_a_prompt_batch_is_charged_per_prompt(limited: Gateway) -> None:
    client = client_for(limited, "sk-limited-batch")
    with pytest.raises(openai.RateLimitError) as err:
        client.completions.create(model=SERVED, prompt=["a", "b", "c", "d"], max_tokens=120)
    assert err.value.response.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize(
    ("extra", "prompt", "message"),
    [
        ({"n": 17}, "x", "asks for 17 sequences (n=17); the maximum is 16"),
        ({"n": 5}, ["a", "b", "c", "d"], "asks for 20 sequences (n=5 for each of 4 prompts)"),
        ({"best_of": 20}, "x", "asks for 20 sequences (best_of=20)"),
    ],
)
def test_n_is_capped(general: Gateway, extra: dict[str, int], prompt: str | list[str], message: str) -> None:
    with pytest.raises(openai.BadRequestError, match=message.replace("(", r"\(").replace(")", r"\)")):
        client_for(general).completions.create(model=SERVED, prompt=prompt, max_tokens=1, extra_body=extra)
    answer = client_for(general).completions.create(model=SERVED, prompt="x", max_tokens=1, n=16)
    assert len(answer.choices) == 16


# --- Medium: a client that leaves stops its generation ------------------------------------


def test_a_non_streamed_request_whose_client_leaves_is_aborted(general: Gateway, engine_url: str) -> None:
    tokens = 1024  # the cap: seconds of work for the tiny model, of which the client waits half a second
    body = {"model": SERVED, "prompt": "endless", "max_tokens": tokens, "ignore_eos": True}
    generated_before = engine_metric(engine_url, "vllm:generation_tokens_total")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(general.url + "/v1/completions", json=body, headers=auth(), timeout=httpx.Timeout(60, read=0.5))
    wait_until(lambda: general.health().json()["in_flight"] == 0, 30, "the gateway to drop the request")
    wait_until(lambda: engine_metric(engine_url, "vllm:num_requests_running") == 0, 30, "the engine to end it")
    generated = engine_metric(engine_url, "vllm:generation_tokens_total") - generated_before
    # Cut before its end (without the abort the engine generates every one of them; how many it
    # managed before the abort reached it depends on the machine's load).
    assert generated < tokens, f"the engine generated all {generated} tokens for a client that left"
    assert any(entry.get("status") == 499 for entry in log_entries(general)), general.log_tail(10)


# --- Medium: structured-output constraints and the time a request may hold the engine -----


@pytest.fixture(scope="module")
def bounded(engine_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    args = ("--engine-time-limit-s", "2", "--max-constraint-bytes", "4096", "--max-tokens-cap", "3000")
    with feature_gateway(tmp_path_factory.mktemp("bounded"), engine_url, *args, name="bounded") as gateway:
        yield gateway


@pytest.mark.parametrize(
    "constraint",
    [
        {"structured_outputs": {"choice": [f"option-{index}" for index in range(20_000)]}},
        {"structured_outputs": {"regex": "(" + "|".join(f"w{index}" for index in range(2000)) + ")"}},
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "big",
                    "schema": {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(500)}},
                },
            }
        },
    ],
    ids=["choices", "regex", "schema"],
)
def test_large_constraints_are_refused_before_the_engine(bounded: Gateway, constraint: dict[str, object]) -> None:
    forwarded = gateway_metric(bounded, "llm_gateway_engine_requests_total", route="/v1/completions")
    started = time.monotonic()
    with pytest.raises(openai.BadRequestError) as err:
        client_for(bounded).completions.create(model=SERVED, prompt="pick", max_tokens=4, extra_body=constraint)
    error = err.value.response.json()["error"]
    assert error["code"] == "constraint_too_large"
    assert "the maximum is 4096" in error["message"]
    assert time.monotonic() - started < 5
    assert gateway_metric(bounded, "llm_gateway_engine_requests_total", route="/v1/completions") == forwarded
    # A small constraint still works.
    small = client_for(bounded).completions.create(
        model=SERVED, prompt="pick", max_tokens=4, extra_body={"structured_outputs": {"choice": ["yes", "no"]}}
    )
    assert small.choices[0].text in {"yes", "no"}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_request_is_stopped_at_the_engine_time_limit(bounded: Gateway, engine_url: str, stream: bool) -> None:
    tokens = 3000
    generated_before = engine_metric(engine_url, "vllm:generation_tokens_total")
    started = time.monotonic()
    client = client_for(bounded)
    if stream:
        events = client.completions.create(
            model=SERVED, prompt="on and on", max_tokens=tokens, stream=True, extra_body={"ignore_eos": True}
        )
        with pytest.raises(openai.APIError, match="time limit"):
            for _ in events:
                pass
    else:
        with pytest.raises(openai.InternalServerError) as err:
            client.completions.create(
                model=SERVED, prompt="on and on", max_tokens=tokens, extra_body={"ignore_eos": True}
            )
        assert err.value.status_code == 504
        assert err.value.response.json()["error"]["code"] == "engine_time_limit"
    assert time.monotonic() - started < 15
    wait_until(lambda: engine_metric(engine_url, "vllm:num_requests_running") == 0, 30, "the engine to end it")
    generated = engine_metric(engine_url, "vllm:generation_tokens_total") - generated_before
    assert generated < tokens / 2, f"the engine generated {generated} tokens past the time limit"


# --- Low: pathological JSON, engine errors, redirects, models, usage, cache headers -------


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "tiny", "prompt": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"model": "tiny", "prompt": ' + b'{"a": ' * 100 + b"1" + b"}" * 100 + b"}",
        b'{"model": "tiny", "prompt": "x", "seed": ' + b"9" * 5000 + b"}",
        b'{"model": "tiny", "prompt": "x", "seed": 99999999999999999999999}',
        b'{"model": "tiny", "prompt": "\\ud800"}',
        b'{"model": "tiny", "prompt": "x", "temperature": NaN}',
        b'{"model": "tiny", "prompt": "x", "temperature": 1e999}',
    ],
    ids=["deep-arrays", "deep-objects", "huge-int", "int-over-64-bits", "lone-surrogate", "nan", "infinity"],
)
def test_pathological_json_is_a_400_without_a_traceback(general: Gateway, body: bytes) -> None:
    response = httpx.post(general.url + "/v1/completions", content=body, headers=auth(), timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_json"
    assert error["message"].startswith("Invalid JSON body: ")
    assert "Traceback" not in general.log_tail(200)


def test_engine_errors_use_the_gateway_envelope(general: Gateway) -> None:
    client = client_for(general)
    with pytest.raises(openai.BadRequestError) as err:
        client.completions.create(model=SERVED, prompt="x", max_tokens=2, temperature=-1)
    error = err.value.response.json()["error"]
    assert error == {
        "message": error["message"],
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "invalid_value",
    }
    assert "temperature" in error["message"]
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=SERVED, messages=[{"role": "user", "content": "x"}], max_tokens=2, extra_body={"logprobs": "many"}
        )
    error = err.value.response.json()["error"]
    assert isinstance(error["code"], str)
    assert error["param"] == "logprobs"
    assert error["message"] == "logprobs: Input should be a valid boolean, unable to interpret input"


def test_no_redirect_echoes_the_host(general: Gateway) -> None:
    for method, path in (("GET", "/v1/models/"), ("POST", "/v1/chat/completions/"), ("GET", "/health/ready/")):
        response = httpx.request(
            method, general.url + path, headers={**auth(), "host": "evil.example"}, json={}, timeout=10
        )
        assert response.status_code == 404, (path, response.status_code)
        assert "location" not in response.headers


def test_models_show_the_id_not_the_local_path(general: Gateway) -> None:
    response = httpx.get(general.url + "/v1/models", headers=auth(), timeout=10)
    assert response.status_code == 200
    assert str(TINY_MODEL) not in response.text
    assert [(model["id"], model["root"]) for model in response.json()["data"]] == [(SERVED, SERVED)]


def test_continuous_usage_stats_are_counted_once(general: Gateway) -> None:
    before = gateway_metric(general, "llm_gateway_completion_tokens_total", route="/v1/completions")
    prompt_before = gateway_metric(general, "llm_gateway_prompt_tokens_total", route="/v1/completions")
    events = list(
        client_for(general).completions.create(
            model=SERVED,
            prompt="count me once",
            max_tokens=12,
            stream=True,
            stream_options={"include_usage": True, "continuous_usage_stats": True},  # type: ignore[typeddict-unknown-key]
            extra_body={"ignore_eos": True},
        )
    )
    assert sum(1 for event in events if event.usage is not None) > 2  # a running count on every event
    usage = events[-1].usage
    assert usage is not None
    assert usage.completion_tokens == 12
    completion = gateway_metric(general, "llm_gateway_completion_tokens_total", route="/v1/completions") - before
    prompt = gateway_metric(general, "llm_gateway_prompt_tokens_total", route="/v1/completions") - prompt_before
    assert (completion, prompt) == (12, usage.prompt_tokens)


LONG_TOKENS = 400


@pytest.mark.parametrize(
    "headers",
    [
        {"cache-control": "no-store"},
        {"cache-control": "no-cache"},
        {"cache-control": "max-age=0"},
        {"pragma": "no-cache"},
    ],
    ids=["no-store", "no-cache", "max-age-0", "pragma"],
)
def test_the_deadline_fallback_honours_cache_directives(general: Gateway, headers: dict[str, str]) -> None:
    client = client_for(general)
    body = {
        "model": SERVED,
        "messages": [{"role": "user", "content": "A long answer, cached, but not for everyone."}],
        "temperature": 0,
        "max_tokens": LONG_TOKENS,
    }
    stored = client.chat.completions.create(**body, extra_body={"ignore_eos": True})  # type: ignore[call-overload]
    assert stored.usage is not None
    assert stored.usage.completion_tokens == LONG_TOKENS
    with pytest.raises(openai.InternalServerError) as err:
        client.chat.completions.create(  # type: ignore[call-overload]
            **body, extra_body={"ignore_eos": True}, extra_headers={**headers, "x-request-timeout": "0.1"}
        )
    assert err.value.status_code == 504
    assert err.value.response.json()["error"]["code"] == "timeout"


def test_the_cache_is_per_key_by_default(general: Gateway) -> None:
    body = {
        "model": SERVED,
        "messages": [{"role": "user", "content": "Mine alone."}],
        "temperature": 0,
        "max_tokens": 4,
    }
    first = client_for(general).chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
    other = client_for(general, OTHER_KEY).chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
    again = client_for(general).chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
    assert (first.headers["x-cache"], other.headers["x-cache"], again.headers["x-cache"]) == ("miss", "miss", "hit")


def test_a_shared_cache_serves_every_key(engine_url: str, tmp_path: Path) -> None:
    env = feature_env(cache__scope="shared")
    with feature_gateway(tmp_path, engine_url, "--api-keys", OTHER_KEY, name="shared", env=env) as gateway:
        body = {"model": SERVED, "messages": [{"role": "user", "content": "Ours."}], "temperature": 0, "max_tokens": 4}
        first = client_for(gateway).chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
        other = client_for(gateway, OTHER_KEY).chat.completions.with_raw_response.create(**body)  # type: ignore[call-overload]
        assert (first.headers["x-cache"], other.headers["x-cache"]) == ("miss", "hit")


def test_the_key_file_format(attach: Callable[..., Gateway], tmp_path: Path) -> None:
    """UTF-8 with or without a byte-order mark; `#` comments, on a line of their own or after a key."""
    keys = tmp_path / "keys.txt"
    keys.write_bytes("\ufeffsk-first-key   # the ops team\n\n  # retired: sk-old\nsk-second-key#bots\n".encode())
    gateway = attach("--api-keys-file", str(keys), name="key-file")
    gateway.wait_ready(120)

    def status(authorization: bytes) -> int:
        headers = {"authorization": b"Bearer " + authorization}
        return httpx.get(gateway.url + "/v1/models", headers=headers, timeout=10).status_code

    assert [status(b"sk-first-key"), status(b"sk-second-key")] == [200, 200]
    refused = [b"sk-first-key   # the ops team", b"sk-old", "\ufeffsk-first-key".encode(), API_KEY.encode()]
    assert [status(key) for key in refused] == [401] * len(refused)
