"""Gateway overhead against the same vLLM: throughput, added latency, time to ready, memory.

    .venv/bin/python -m scripts.bench_gateway [--model .cache/tiny-model] [--concurrency 64]

1. vLLM alone: spawn it, time to its /health 200 (the baseline), stop it.
2. The gateway supervising the same engine command: time to its /health/ready 200.
3. On that one engine, interleaved rounds direct / through the gateway:
   - throughput: `concurrency` streaming chat requests of `tokens` tokens each;
   - latency: sequential 1-token requests, p50 and p99 of each path;
   - the gateway's resident memory, sampled while `concurrency` streams are open.
Writes bench-results/gateway.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench-results" / "gateway.json"
LATENCIES = REPO / "bench-results" / "gateway_latencies.json"
SERVED = "bench"
KEY = "sk-bench"


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline: float | None = None
    ratio: float | None = None
    goal: str | None = None
    met: bool | None = None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_200(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return time.monotonic() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} not ready after {timeout_s} s")


def _stop(process: subprocess.Popen[bytes], group: bool) -> None:
    if process.poll() is None:
        if group:
            os.killpg(process.pid, signal.SIGTERM)
        else:
            process.send_signal(signal.SIGINT)
            time.sleep(0.2)
            process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _engine_args(args: argparse.Namespace) -> list[str]:
    return ["--max-model-len", str(args.max_model_len)]


def vllm_time_to_ready(args: argparse.Namespace, log: Path) -> float:
    port = _free_port()
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", args.model]
    argv += ["--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(port), *_engine_args(args)]
    argv += args.engine_args.split(",") if args.engine_args else []
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return _wait_200(f"http://127.0.0.1:{port}/health", process, args.start_timeout)
    finally:
        _stop(process, group=True)


def start_gateway(args: argparse.Namespace, tmp: Path) -> tuple[subprocess.Popen[bytes], int, int, float]:
    port, engine_port = _free_port(), _free_port()
    keys = tmp / "keys"
    keys.write_text(KEY + "\n")
    argv = [sys.executable, "-m", "service", "--model", args.model, "--served-model-name", SERVED]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--engine-port", str(engine_port), *_engine_args(args)]
    argv += ["--api-keys-file", str(keys), "--engine-log-file", str(tmp / "engine.log"), "--log-level", "warning"]
    argv += ["--max-tokens-cap", str(max(args.tokens, 16)), "--max-in-flight", "100000"]
    if args.engine_args:
        argv += [f"--engine-args={args.engine_args}"]
    with (tmp / "gateway.log").open("ab") as out:
        process = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    ready_s = _wait_200(f"http://127.0.0.1:{port}/health/ready", process, args.start_timeout)
    return process, port, engine_port, ready_s


async def _stream_one(client: httpx.AsyncClient, tokens: int) -> int:
    body = {
        "model": SERVED,
        "messages": [{"role": "user", "content": "Tell me a story."}],
        "max_tokens": tokens,
        "stream": True,
        "ignore_eos": True,
    }
    events = 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data: {") and '"content":"' in line:
                events += 1
    return events


async def throughput(base: str, concurrency: int, tokens: int, rss_of: psutil.Process | None) -> tuple[float, float]:
    """(completion tokens per second, peak RSS bytes of `rss_of` during the round)."""
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    headers = {"authorization": f"Bearer {KEY}"}
    peak = 0.0
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=600, headers=headers) as client:
        started = time.perf_counter()
        tasks = [asyncio.create_task(_stream_one(client, tokens)) for _ in range(concurrency)]
        while not all(task.done() for task in tasks):
            if rss_of is not None:
                peak = max(peak, float(rss_of.memory_info().rss))
            await asyncio.sleep(0.05)
        counts = [task.result() for task in tasks]
        elapsed = time.perf_counter() - started
    return sum(counts) / elapsed, peak


async def latencies(base: str, requests: int) -> list[float]:
    body = {"model": SERVED, "prompt": "hi", "max_tokens": 1, "temperature": 0}
    samples = []
    async with httpx.AsyncClient(base_url=base, timeout=60, headers={"authorization": f"Bearer {KEY}"}) as client:
        for _ in range(requests):
            started = time.perf_counter()
            response = await client.post("/v1/completions", json=body)
            samples.append(time.perf_counter() - started)
            response.raise_for_status()
    return samples


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(args: argparse.Namespace) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp_name:
        tmp = Path(tmp_name)
        vllm_ready = vllm_time_to_ready(args, tmp / "vllm.log")
        process, port, engine_port, gateway_ready = start_gateway(args, tmp)
        try:
            gateway, direct = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{engine_port}"
            me = psutil.Process(process.pid)
            asyncio.run(throughput(direct, 8, 8, None))  # warm both paths' connections and the engine
            asyncio.run(throughput(gateway, 8, 8, None))
            tput_d, tput_g, lat_d, lat_g, rss = [], [], [], [], 0.0
            for _ in range(args.rounds):
                tput_d.append(asyncio.run(throughput(direct, args.concurrency, args.tokens, None))[0])
                rate, peak = asyncio.run(throughput(gateway, args.concurrency, args.tokens, me))
                tput_g.append(rate)
                rss = max(rss, peak)
                lat_d += asyncio.run(latencies(direct, args.latency_requests))
                lat_g += asyncio.run(latencies(gateway, args.latency_requests))
        finally:
            _stop(process, group=False)
    # Raw samples for the latency plot of `make bench` (scripts/bench.py).
    LATENCIES.parent.mkdir(exist_ok=True)
    LATENCIES.write_text(json.dumps({"direct_s": lat_d, "gateway_s": lat_g}) + "\n")
    direct_tput, gateway_tput = statistics.median(tput_d), statistics.median(tput_g)
    p50 = (_pct(lat_g, 0.5) - _pct(lat_d, 0.5)) * 1000
    p99 = (_pct(lat_g, 0.99) - _pct(lat_d, 0.99)) * 1000
    ratio = gateway_tput / direct_tput
    return [
        Figure(
            "throughput_through_gateway",
            round(gateway_tput, 1),
            "tokens/s",
            round(direct_tput, 1),
            round(ratio, 3),
            ">= 0.97 x direct",
            ratio >= 0.97,
        ),
        Figure(
            "added_latency_p50", round(p50, 3), "ms", round(_pct(lat_d, 0.5) * 1000, 3), None, "<= 1 ms", p50 <= 1.0
        ),
        Figure(
            "added_latency_p99", round(p99, 3), "ms", round(_pct(lat_d, 0.99) * 1000, 3), None, "<= 5 ms", p99 <= 5.0
        ),
        Figure(
            "time_to_ready",
            round(gateway_ready, 2),
            "s",
            round(vllm_ready, 2),
            round(gateway_ready / vllm_ready, 3),
            "<= vLLM + 1 s",
            gateway_ready <= vllm_ready + 1.0,
        ),
        Figure("gateway_rss_at_concurrency", round(rss / 2**20, 1), "MiB", None, None, "<= 200 MB", rss <= 200e6),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench_gateway", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / ".cache" / "tiny-model"))
    parser.add_argument("--max-model-len", type=int, default=1024)
    parser.add_argument("--engine-args", default="--enforce-eager", help="extra engine args, comma-separated")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-requests", type=int, default=100)
    parser.add_argument("--start-timeout", type=float, default=600)
    args = parser.parse_args(argv)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    figures = measure(args)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"area": "gateway", "figures": [asdict(f) for f in figures]}, indent=2) + "\n")
    print(f"{'figure':32} {'value':>10} {'unit':9} {'baseline':>10} {'ratio':>7}  goal / met")
    for f in figures:
        baseline = "-" if f.baseline is None else f"{f.baseline:g}"
        ratio = "-" if f.ratio is None else f"{f.ratio:g}"
        print(f"{f.name:32} {f.value:>10g} {f.unit:9} {baseline:>10} {ratio:>7}  {f.goal} / {f.met}")
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
