"""Gateway overhead against the same vLLM: throughput, added latency, time to ready, memory.

    .venv/bin/python -m scripts.bench_gateway [--model .cache/tiny-model] [--concurrency 64]

1. vLLM alone: spawn it, time to its /health 200 (the baseline), stop it.
2. The gateway supervising the same engine command: time to its /health/ready 200.
3. On that one engine, rounds interleaved direct / gateway / direct / gateway (A B A B, so
   both paths see the same drift of a shared machine):
   - throughput: `concurrency` streaming chat requests of `tokens` tokens each; the ratio is
     taken per round (gateway / the direct round just before it) and the median reported;
   - the CPU the gateway process used per round (per relayed token, and as a share of the
     gateway + engine CPU), which does not depend on what else the machine runs;
   - latency: sequential 1-token requests, p50 and p99 of each path;
   - the gateway's resident memory, sampled while `concurrency` streams are open.
The load generator is the gateway's own lean HTTP client (cheap per token), so the engine sets
the pace. Writes bench-results/gateway.json and prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from contract.facts import CHAT_COMPLETIONS_PATH, COMPLETIONS_PATH, HEALTH_READY_PATH
from devkit.proc import free_port, http_status, wait_until
from service.upstream.client import ENGINE_HEALTH_PATH
from service.upstream.pool import UpstreamPool
from service.upstream.relay import usage_in

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


def _wait_200(url: str, process: subprocess.Popen[bytes], timeout_s: float) -> float:
    def up() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        return _ok(url)

    return wait_until(up, timeout_s, url, interval_s=0.02)


def _ok(url: str) -> bool:
    return http_status(url, timeout_s=1.0) == 200


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
    port = free_port()
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", args.model]
    argv += ["--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(port), *_engine_args(args)]
    argv += args.engine_args.split(",") if args.engine_args else []
    with log.open("ab") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        return _wait_200(f"http://127.0.0.1:{port}{ENGINE_HEALTH_PATH}", process, args.start_timeout)
    finally:
        _stop(process, group=True)


@dataclass
class Start:
    """One gateway start, timed from its process start: when its engine was spawned, when the
    engine's own /health first answered 200 and when the gateway's /health/ready did."""

    process: subprocess.Popen[bytes]
    port: int
    engine_port: int
    gateway_ready_s: float
    engine_spawned_s: float
    engine_healthy_s: float

    @property
    def engine_own_s(self) -> float:
        """vLLM's own time to ready in this very start (from its spawn to its /health)."""
        return self.engine_healthy_s - self.engine_spawned_s


def start_gateway(args: argparse.Namespace, tmp: Path, *, cpus: set[int] | None = None) -> Start:
    """The gateway supervising its engine; with `cpus`, both start on those CPUs only.

    Polls the engine's /health and the gateway's /health/ready side by side, so the gateway's
    added time to ready (the engine's spawn delay plus warm-up and readiness after the engine is
    healthy) is measured within one start: separate starts of vLLM differ by seconds."""
    port, engine_port = free_port(), free_port()
    keys = tmp / "keys"
    keys.write_text(KEY + "\n")
    argv = [sys.executable, "-m", "service", "--model", args.model, "--served-model-name", SERVED]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--engine-port", str(engine_port), *_engine_args(args)]
    argv += ["--api-keys-file", str(keys), "--engine-log-file", str(tmp / "engine.log"), "--log-level", "warning"]
    argv += ["--max-tokens-cap", str(max(args.tokens, 16)), "--max-in-flight", "100000"]
    if args.engine_args:
        argv += [f"--engine-args={args.engine_args}"]
    # The bench measures the proxy path: no rate limit in the way of 64 concurrent streams, and
    # no per-key cap on in-flight requests (its load is one key; an environment variable, so an
    # older gateway run with --gateway-repo, which has no such setting, still starts).
    env = {
        **os.environ,
        "LLM_SERVICE_FEATURES__RATE_LIMIT__ENABLED": "false",
        "LLM_SERVICE_MAX_IN_FLIGHT_PER_KEY": "100000",
    }
    started = time.monotonic()
    with (tmp / "gateway.log").open("ab") as out:
        process = subprocess.Popen(
            argv,
            cwd=args.gateway_repo,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,  # noqa: PLW1509
        )
    gateway = psutil.Process(process.pid)
    spawned: float | None = None
    healthy: float | None = None
    while time.monotonic() - started < args.start_timeout:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode} (log: {tmp / 'gateway.log'})")
        if spawned is None and (children := gateway.children()):
            spawned = min(child.create_time() for child in children) - gateway.create_time()
        if healthy is None and _ok(f"http://127.0.0.1:{engine_port}{ENGINE_HEALTH_PATH}"):
            healthy = time.monotonic() - started
        if healthy is not None and _ok(f"http://127.0.0.1:{port}{HEALTH_READY_PATH}"):
            ready = time.monotonic() - started
            return Start(process, port, engine_port, ready, spawned or 0.0, healthy)
        time.sleep(0.02)
    _stop(process, group=False)
    raise RuntimeError(f"the gateway was not ready within {args.start_timeout} s")


_STREAM_BODY = {
    "model": SERVED,
    "messages": [{"role": "user", "content": "Tell me a story."}],
    "stream": True,
    "stream_options": {"include_usage": True},
    "ignore_eos": True,
}


_NO_CACHE = b"cache-control: no-cache\r\n"


class LoadClient:
    """The load generator: the gateway's own lean HTTP/1.1 client (asyncio + httptools).

    Its cost per streamed token is a fraction of httpx's, so on a small machine the engine, not
    the load generator, sets the pace, and the two paths are compared on equal terms.
    """

    def __init__(self, base: str, connections: int) -> None:
        self._pool = UpstreamPool(base, connect_timeout_s=30, read_timeout_s=600, max_connections=connections)
        self._headers = f"authorization: Bearer {KEY}\r\ncontent-type: application/json\r\n".encode()

    async def stream(self, tokens: int) -> int:
        """One streamed chat completion; returns its completion tokens (from the usage event).

        Events are not tokens: a busy engine merges several tokens into one event, and does so
        differently on the two paths, so counting events would compare unequal work."""
        body = json.dumps({**_STREAM_BODY, "max_tokens": tokens}).encode()
        response = await self._pool.request("POST", CHAT_COMPLETIONS_PATH, body, self._headers)
        try:
            if response.status_code != 200:
                raise RuntimeError(f"stream answered {response.status_code}: {(await response.aread())[:200]!r}")
            tail = b""
            while piece := await response.next_chunk():
                tail = tail[-4096:] + piece
            usage = usage_in(tail)
            if usage is None or not isinstance(usage.get("completion_tokens"), int):
                raise RuntimeError(f"stream without a usage event: {tail[-300:]!r}")
            return int(usage["completion_tokens"])
        finally:
            await response.aclose()

    async def one_token(self) -> float:
        """One 1-token completion's wall time. It is deterministic (temperature 0), so the
        gateway's response cache would answer every repeat: `cache-control: no-cache` sends
        each one to the engine (the cache's key and store still run: the miss path)."""
        body = b'{"model":"%s","prompt":"hi","max_tokens":1,"temperature":0}' % SERVED.encode()
        started = time.perf_counter()
        response = await self._pool.request("POST", COMPLETIONS_PATH, body, self._headers + _NO_CACHE)
        try:
            await response.aread()
        finally:
            await response.aclose()
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"completion answered {response.status_code}")
        if response.header(b"x-cache") not in (None, b"miss"):
            raise RuntimeError(f"latency sample not from the engine (x-cache: {response.header(b'x-cache')!r})")
        return elapsed

    async def aclose(self) -> None:
        await self._pool.aclose()


def _cpu_s(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


@dataclass
class Round:
    path: str
    tokens_per_s: float
    gateway_cpu_s: float
    engine_cpu_s: float
    peak_rss: float


async def _throughput(base: str, concurrency: int, tokens: int) -> tuple[float, float]:
    """(completion tokens per second, wall seconds); every stream must deliver all its tokens."""
    client = LoadClient(base, concurrency)
    try:
        started = time.perf_counter()
        counts = await asyncio.gather(*(client.stream(tokens) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await client.aclose()
    short = [count for count in counts if count != tokens]
    if short:
        raise RuntimeError(f"{len(short)} streams ended early: {short[:5]}")
    return sum(counts) / elapsed, elapsed


def throughput_round(
    path: str, base: str, args: argparse.Namespace, gateway: psutil.Process, engine: list[psutil.Process]
) -> Round:
    """One round on one path, with the CPU each process used and the gateway's peak memory."""
    peak = [float(gateway.memory_info().rss)]
    done = False

    async def sample() -> None:
        while not done:
            peak[0] = max(peak[0], float(gateway.memory_info().rss))
            await asyncio.sleep(0.05)

    async def run() -> float:
        nonlocal done
        sampler = asyncio.create_task(sample())
        try:
            rate, _elapsed = await _throughput(base, args.concurrency, args.tokens)
        finally:
            done = True
            await sampler
        return rate

    gateway_cpu, engine_cpu = _cpu_s([gateway]), _cpu_s(engine)
    rate = asyncio.run(run())
    return Round(path, rate, _cpu_s([gateway]) - gateway_cpu, _cpu_s(engine) - engine_cpu, peak[0])


async def latencies(base: str, requests: int) -> list[float]:
    client = LoadClient(base, 1)
    try:
        return [await client.one_token() for _ in range(requests)]
    finally:
        await client.aclose()


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Pass:
    """The rounds, latency samples and per-request gateway CPU of one configuration."""

    rounds: list[tuple[Round, Round]]
    lat_d: list[float]
    lat_g: list[float]
    gateway_cpu_per_request_s: float


def run_pass(label: str, gateway: str, direct: str, args: argparse.Namespace, me: psutil.Process) -> Pass:
    engine = me.children(recursive=True)
    asyncio.run(_throughput(direct, 8, 8))  # warm both paths' connections and the engine
    asyncio.run(_throughput(gateway, 8, 8))
    rounds: list[tuple[Round, Round]] = []
    lat_d: list[float] = []
    lat_g: list[float] = []
    cpu_per_request: list[float] = []
    for index in range(args.rounds):  # interleaved A B A B: both paths see the same drift
        pair = (
            throughput_round("direct", direct, args, me, engine),
            throughput_round("gateway", gateway, args, me, engine),
        )
        rounds.append(pair)
        lat_d += asyncio.run(latencies(direct, args.latency_requests))
        before = _cpu_s([me])
        lat_g += asyncio.run(latencies(gateway, args.latency_requests))
        cpu_per_request.append((_cpu_s([me]) - before) / args.latency_requests)
        d, g = pair
        print(
            f"{label} round {index + 1}: direct {d.tokens_per_s:.0f} tok/s, gateway {g.tokens_per_s:.0f} tok/s, "
            f"ratio {g.tokens_per_s / d.tokens_per_s:.3f}; gateway CPU {g.gateway_cpu_s:.2f} s "
            f"(engine {g.engine_cpu_s:.2f} s)",
            flush=True,
        )
    return Pass(rounds, lat_d, lat_g, statistics.median(cpu_per_request))


def _pin(process: psutil.Process, cpus: set[int]) -> None:
    """Every thread of `process` onto `cpus` (affinity is per thread on Linux)."""
    for thread in process.threads():
        try:
            os.sched_setaffinity(thread.id, cpus)
        except OSError:  # a thread that just ended
            continue


def isolated_cpus() -> tuple[set[int], set[int]] | None:
    """(engine CPUs, gateway and load-generator CPU), or None with fewer than 2 CPUs."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return set(cpus[:-1]), {cpus[-1]}


def measure(args: argparse.Namespace) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp_name:
        tmp = Path(tmp_name)
        vllm_ready = vllm_time_to_ready(args, tmp / "vllm.log")
        start = start_gateway(args, tmp)
        try:
            gateway, direct = f"http://127.0.0.1:{start.port}", f"http://127.0.0.1:{start.engine_port}"
            shared = run_pass("shared CPUs", gateway, direct, args, psutil.Process(start.process.pid))
        finally:
            _stop(start.process, group=False)
        result = figures(args, shared, vllm_ready=vllm_ready, start=start)
        split = isolated_cpus() if args.isolated else None
        if split is not None:
            # On a GPU host the engine's work is on the GPU and the gateway has CPU to spare; on
            # a small CPU-only machine the two fight over the same cores. This pass gives the
            # engine its own CPUs (it inherits them at start) and the gateway and load generator
            # the last one, so the ratio shows what the gateway itself costs.
            engine_cpus, own_cpus = split
            mine = os.sched_getaffinity(0)
            start = start_gateway(args, tmp, cpus=engine_cpus)
            try:
                me = psutil.Process(start.process.pid)
                _pin(me, own_cpus)
                _pin(psutil.Process(), own_cpus)
                gateway, direct = f"http://127.0.0.1:{start.port}", f"http://127.0.0.1:{start.engine_port}"
                isolated = run_pass("isolated", gateway, direct, args, me)
            finally:
                _pin(psutil.Process(), mine)
                _stop(start.process, group=False)
            result += isolated_figures(isolated, engine_cpus, own_cpus)
    # Raw samples for the latency plot of `make bench` (scripts/bench.py).
    LATENCIES.parent.mkdir(exist_ok=True)
    LATENCIES.write_text(json.dumps({"direct_s": shared.lat_d, "gateway_s": shared.lat_g}) + "\n")
    return result


def isolated_figures(run: Pass, engine_cpus: set[int], own_cpus: set[int]) -> list[Figure]:
    ratios = [g.tokens_per_s / d.tokens_per_s for d, g in run.rounds]
    ratio = statistics.median(ratios)
    p50 = (_pct(run.lat_g, 0.5) - _pct(run.lat_d, 0.5)) * 1000
    p99 = (_pct(run.lat_g, 0.99) - _pct(run.lat_d, 0.99)) * 1000
    where = f"engine on CPUs {sorted(engine_cpus)}, gateway + load on {sorted(own_cpus)}"
    return [
        Figure(
            "isolated_throughput_through_gateway",
            round(statistics.median(g.tokens_per_s for _, g in run.rounds), 1),
            "tokens/s",
            round(statistics.median(d.tokens_per_s for d, _ in run.rounds), 1),
            round(ratio, 3),
            f">= 0.97 x direct ({where})",
            ratio >= 0.97,
        ),
        Figure(
            "isolated_added_latency_p50",
            round(p50, 3),
            "ms",
            round(_pct(run.lat_d, 0.5) * 1000, 3),
            None,
            "<= 1 ms",
            p50 <= 1.0,
        ),
        Figure(
            "isolated_added_latency_p99",
            round(p99, 3),
            "ms",
            round(_pct(run.lat_d, 0.99) * 1000, 3),
            None,
            "<= 5 ms",
            p99 <= 5.0,
        ),
    ]


def figures(args: argparse.Namespace, run: Pass, *, vllm_ready: float, start: Start) -> list[Figure]:
    rounds, lat_d, lat_g = run.rounds, run.lat_d, run.lat_g
    added = start.gateway_ready_s - start.engine_own_s  # spawn delay + warm-up + readiness
    ratios = [g.tokens_per_s / d.tokens_per_s for d, g in rounds]
    ratio = statistics.median(ratios)
    direct_tput = statistics.median(d.tokens_per_s for d, _ in rounds)
    gateway_tput = statistics.median(g.tokens_per_s for _, g in rounds)
    tokens = args.concurrency * args.tokens
    cpu_per_token_us = statistics.median(g.gateway_cpu_s / tokens * 1e6 for _, g in rounds)
    cpu_share = statistics.median(g.gateway_cpu_s / (g.gateway_cpu_s + g.engine_cpu_s) for _, g in rounds)
    rss = max(g.peak_rss for _, g in rounds)
    p50 = (_pct(lat_g, 0.5) - _pct(lat_d, 0.5)) * 1000
    p99 = (_pct(lat_g, 0.99) - _pct(lat_d, 0.99)) * 1000
    per_round = [
        Figure(
            f"throughput_ratio_round_{index + 1}",
            round(g.tokens_per_s, 1),
            "tokens/s",
            round(d.tokens_per_s, 1),
            round(g.tokens_per_s / d.tokens_per_s, 3),
            None,
            None,
        )
        for index, (d, g) in enumerate(rounds)
    ]
    return [
        Figure(
            "throughput_through_gateway",
            round(gateway_tput, 1),
            "tokens/s",
            round(direct_tput, 1),
            round(ratio, 3),
            ">= 0.97 x direct (median of per-round ratios)",
            ratio >= 0.97,
        ),
        *per_round,
        Figure("gateway_cpu_per_token", round(cpu_per_token_us, 1), "us", None, None, None, None),
        Figure("gateway_cpu_share", round(cpu_share * 100, 2), "% of gateway+engine CPU", None, None, None, None),
        Figure(
            "gateway_cpu_per_request",
            round(run.gateway_cpu_per_request_s * 1e6, 1),
            "us",
            None,
            None,
            "1-token completion, cache miss",
            None,
        ),
        Figure(
            "added_latency_p50", round(p50, 3), "ms", round(_pct(lat_d, 0.5) * 1000, 3), None, "<= 1 ms", p50 <= 1.0
        ),
        Figure(
            "added_latency_p99", round(p99, 3), "ms", round(_pct(lat_d, 0.99) * 1000, 3), None, "<= 5 ms", p99 <= 5.0
        ),
        Figure(
            "time_to_ready",
            round(start.gateway_ready_s, 2),
            "s",
            round(start.engine_own_s, 2),
            round(start.gateway_ready_s / start.engine_own_s, 3),
            "<= vLLM + 1 s (vLLM's own, from its spawn to its /health, in the same start)",
            start.gateway_ready_s <= start.engine_own_s + 1.0,
        ),
        Figure("time_to_ready_added", round(added, 2), "s", None, None, "<= 1 s (spawn delay + warm-up)", added <= 1.0),
        Figure("engine_spawned_after", round(start.engine_spawned_s, 2), "s", None, None, None, None),
        Figure("vllm_alone_time_to_ready", round(vllm_ready, 2), "s", None, None, "a separate start", None),
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
    parser.add_argument(
        "--isolated",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure with the engine and the gateway on separate CPUs (needs 2 or more)",
    )
    parser.add_argument(
        "--gateway-repo",
        type=Path,
        default=REPO,
        help="run the gateway from this checkout (compare two versions in the same configuration)",
    )
    args = parser.parse_args(argv)
    # A plain `kill` still runs the cleanup (the engine and the gateway are stopped, not orphaned).
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))
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
