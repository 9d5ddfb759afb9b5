"""A local region: service instances (each gateway supervising its own vLLM) behind HAProxy.

HAProxy plays the cloud load balancer. It health-checks ``GET /health/ready`` like the ALB
target group (10 s interval, 2 healthy, 3 unhealthy) with the interval scaled down
(10 s / 3 / 2 -> 1 s / 3 / 2), balances on least connections,
and retries only failures where the request was provably not processed:

- ``conn-failure`` / ``empty-response``: the connection failed or closed before any byte of
  a response (an instance that is exiting, a reused keep-alive connection it closed);
- ``503``: the gateway answers 503 only *before* forwarding (``draining``,
  ``engine_unavailable``), so nothing was generated.

A 502 (the engine died under an in-flight request) or a broken stream is never retried:
the client sees it, with a retryable status, and decides. ``option redispatch`` sends each
retry to another server. When no instance passes its check, HAProxy fails open to all of
them (unchecked backup servers), as an ALB does when every target is unhealthy.

Used by ``scripts.demo`` and ``tests/resilience``; processes bind 127.0.0.1 only and every
wait is bounded.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from service.engine_process import free_port

# One API key drives all the load here: raise its per-key rate limit far above the load
# (the limiter itself stays on; tests/service/test_features_gateway.py exercises it).
LOAD_TEST_RATE_LIMIT_ENV = {
    "LLM_SERVICE_FEATURES__RATE_LIMIT__REQUESTS_PER_MINUTE": "1000000",
    "LLM_SERVICE_FEATURES__RATE_LIMIT__TOKENS_PER_MINUTE": "1000000000",
}
REPO = Path(__file__).resolve().parent.parent
TINY_MODEL = REPO / ".cache" / "tiny-model"
SERVED = "tiny"
BACKEND = "llm"
FAIL_OPEN_SUFFIX = "-failopen"


class LocalRegionError(RuntimeError):
    """A local component failed to start or stop; the message is one line for the operator."""


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> float:
    """Poll `predicate` until it holds; the seconds it took. LocalRegionError on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval_s)
    raise LocalRegionError(f"timed out after {timeout_s:g} s waiting for {what}")


def http_status(url: str, timeout_s: float = 2.0) -> int:
    """The status of GET `url`, 0 when it cannot be reached."""
    try:
        return httpx.get(url, timeout=timeout_s, trust_env=False).status_code
    except httpx.HTTPError:
        return 0


# --- the load balancer's health check ----------------------------------------------------


@dataclass(frozen=True)
class LbHealthCheck:
    """A target-group style health check on the readiness path."""

    path: str = "/health/ready"
    interval_s: float = 10.0
    timeout_s: float = 5.0
    healthy_threshold: int = 2
    unhealthy_threshold: int = 3

    @property
    def detect_down_s(self) -> float:
        """The longest an instance that stopped answering 200 stays in the rotation."""
        return self.interval_s * self.unhealthy_threshold


# The ALB target group of every AWS region (infra/constructs/aws_load_balancer.py), and the
# local region's: the interval scaled 10 s -> 1 s with the same thresholds. The check timeout
# stays at 2 s: on a shared 2-core machine a loaded gateway may take longer than 0.5 s to
# answer, and a flapping healthy instance is not what the local region should demonstrate.
ALB_HEALTH_CHECK = LbHealthCheck()
LOCAL_HEALTH_CHECK = LbHealthCheck(
    ALB_HEALTH_CHECK.path,
    interval_s=ALB_HEALTH_CHECK.interval_s / 10,
    timeout_s=2.0,
    healthy_threshold=ALB_HEALTH_CHECK.healthy_threshold,
    unhealthy_threshold=ALB_HEALTH_CHECK.unhealthy_threshold,
)


# --- one service instance -----------------------------------------------------------------


@dataclass(frozen=True)
class InstanceOptions:
    """How every local instance is started (scaled-down drain windows, fast probes)."""

    model: Path = TINY_MODEL
    max_model_len: int = 1024
    max_tokens_cap: int = 64
    probe_interval_s: float = 1.0
    probe_timeout_s: float = 20.0  # the machine is shared: a slow probe is not a dead engine
    # Serve past HAProxy's detection time (interval x unhealthy threshold) before rejecting.
    drain_serve_s: float = LOCAL_HEALTH_CHECK.detect_down_s + 2.0
    drain_finish_s: float = 30.0
    gcp_drain_serve_s: float = LOCAL_HEALTH_CHECK.detect_down_s + 2.0
    gcp_drain_finish_s: float = 15.0
    restart_backoff_s: float = 0.5
    engine_start_timeout_s: float = 900.0  # two engines loading at once on a shared 2-core machine
    extra_args: tuple[str, ...] = ()


@dataclass
class Instance:
    """One `python -m service` process supervising one vLLM."""

    name: str
    workdir: Path
    api_key: str
    metrics_token: str
    options: InstanceOptions
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    watch_args: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def engine_log_path(self) -> Path:
        return self.workdir / f"{self.name}-engine.log"

    def start(self, watch_args: Sequence[str] = ()) -> None:
        """Start the gateway (it starts its engine); `watch_args` e.g. --watch-aws and its URL."""
        if self.process is not None and self.process.poll() is None:
            raise LocalRegionError(f"{self.name}: already running")
        if self.port == 0:
            self.port = free_port()  # a restarted instance keeps its address (HAProxy's server line)
        self.watch_args = tuple(watch_args)
        keys = self.workdir / "api-keys"
        keys.write_text(f"{self.api_key}\n", encoding="utf-8")
        opts = self.options
        argv = [
            sys.executable,
            "-m",
            "service",
            "--model",
            str(opts.model),
            "--served-model-name",
            SERVED,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--api-keys-file",
            str(keys),
            "--metrics-token",
            self.metrics_token,
            "--max-model-len",
            str(opts.max_model_len),
            "--max-tokens-cap",
            str(opts.max_tokens_cap),
            "--engine-args=--enforce-eager",  # no torch.compile: the tiny model starts in seconds
            "--engine-log-file",
            str(self.engine_log_path),
            "--engine-start-timeout-s",
            str(opts.engine_start_timeout_s),
            "--probe-interval-s",
            str(opts.probe_interval_s),
            "--probe-timeout-s",
            str(opts.probe_timeout_s),
            "--restart-backoff-s",
            str(opts.restart_backoff_s),
            "--drain-serve-s",
            str(opts.drain_serve_s),
            "--drain-finish-s",
            str(opts.drain_finish_s),
            "--gcp-drain-serve-s",
            str(opts.gcp_drain_serve_s),
            "--gcp-drain-finish-s",
            str(opts.gcp_drain_finish_s),
            "--log-level",
            "warning",
            *opts.extra_args,
            *self.watch_args,
        ]
        env = {
            **os.environ,
            **LOAD_TEST_RATE_LIMIT_ENV,
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            # two engines on one machine: no pinning of both to core 0 (vLLM's "auto")
            "VLLM_CPU_OMP_THREADS_BIND": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "nobind"),
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ready(self) -> bool:
        if not self.running():
            raise LocalRegionError(f"{self.name} exited with {self.returncode()}: {self.log_tail(5)}")
        return http_status(self.url + "/health/ready") == 200

    def wait_ready(self, timeout_s: float | None = None) -> float:
        return wait_until(
            self.ready, timeout_s or self.options.engine_start_timeout_s, f"{self.name} /health/ready", 0.2
        )

    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def health(self) -> dict[str, object]:
        """The readiness JSON body, or {"status": "unreachable"}."""
        try:
            body: dict[str, object] = httpx.get(self.url + "/health/ready", timeout=2.0, trust_env=False).json()
        except (httpx.HTTPError, ValueError):
            return {"status": "unreachable", "ready": False}
        return body

    def metrics(self) -> str:
        response = httpx.get(
            self.url + "/metrics", headers={"authorization": f"Bearer {self.metrics_token}"}, timeout=5.0
        )
        response.raise_for_status()
        return response.text

    def engine_pid(self) -> int | None:
        """The vLLM API server (the gateway's child, leader of its own process group)."""
        if not self.running() or self.process is None:
            return None
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children():
                if child.status() != psutil.STATUS_ZOMBIE and "vllm" in " ".join(child.cmdline()):
                    return int(child.pid)
        return None

    def kill_engine(self) -> int:
        """SIGKILL the engine's whole process group (API server, engine core); its pid."""
        pid = self.engine_pid()
        if pid is None:
            raise LocalRegionError(f"{self.name}: no engine process to kill")
        os.killpg(pid, signal.SIGKILL)
        return pid

    def terminate(self) -> None:
        """SIGTERM: the gateway drains (ready 503, serve, reject, finish) and exits 0."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait_exit(self, timeout_s: float) -> int:
        assert self.process is not None
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise LocalRegionError(f"{self.name} did not exit within {timeout_s:g} s") from exc

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop now (two SIGINTs skip the drain), SIGKILL past the timeout; never leaves an engine."""
        process = self.process
        if process is None:
            return
        descendants: list[psutil.Process] = []
        with contextlib.suppress(psutil.Error):
            descendants = psutil.Process(process.pid).children(recursive=True)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        _, alive = psutil.wait_procs(descendants, timeout=10)
        for leftover in alive:
            with contextlib.suppress(psutil.Error):
                leftover.kill()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


# --- HAProxy ------------------------------------------------------------------------------


def haproxy_config(
    *, port: int, stats_port: int, servers: Sequence[tuple[str, int]], check: LbHealthCheck = LOCAL_HEALTH_CHECK
) -> str:
    """An HAProxy configuration that load-balances like the cloud LB in front of a region."""
    inter_ms = round(check.interval_s * 1000)
    timeout_ms = round(check.timeout_s * 1000)
    server_lines = "\n".join(f"    server {name} 127.0.0.1:{server_port} check" for name, server_port in servers)
    # Fail open like an ALB whose targets are all unhealthy: it then routes to all of them.
    # The same instances, unchecked, as backups that take traffic only when no server is UP.
    server_lines += "\n" + "\n".join(
        f"    server {name}{FAIL_OPEN_SUFFIX} 127.0.0.1:{server_port} backup" for name, server_port in servers
    )
    return f"""\
global
    log stderr format short local0 notice
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 2s
    timeout client 310s
    timeout server 310s
    timeout http-request 10s
    timeout check {timeout_ms}ms

frontend api
    bind 127.0.0.1:{port}
    # Only the public API and the health paths reach an instance (like the ALB listener rules).
    acl api path /v1/chat/completions /v1/completions /v1/models
    acl health path_beg /health
    http-request deny deny_status 404 unless api || health
    default_backend {BACKEND}

backend {BACKEND}
    balance leastconn
    option httpchk
    http-check send meth GET uri {check.path}
    http-check expect status 200
    default-server inter {inter_ms} fastinter {inter_ms} downinter {inter_ms} fall {check.unhealthy_threshold} \
rise {check.healthy_threshold}
    # Retry only what provably was not processed; each retry goes to another server. A status
    # retry needs the whole request in HAProxy's buffer (without it, POSTs are never retried).
    option http-buffer-request
    retries 3
    retry-on conn-failure empty-response 503
    option redispatch 1
    option allbackups
{server_lines}

frontend stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
    stats refresh 5s
"""


@dataclass
class ServerStats:
    name: str
    status: str  # UP, DOWN, "UP 1/2", "DOWN 1/3", MAINT, no check
    retries: int
    redispatches: int
    responses_5xx: int
    sessions_total: int


@dataclass
class HAProxy:
    workdir: Path
    servers: Sequence[tuple[str, int]]
    check: LbHealthCheck = LOCAL_HEALTH_CHECK
    port: int = 0
    stats_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "haproxy.log"

    def start(self) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise LocalRegionError("haproxy not found: install the Debian package haproxy")
        self.port, self.stats_port = free_port(), free_port()
        config = self.workdir / "haproxy.cfg"
        config.write_text(
            haproxy_config(port=self.port, stats_port=self.stats_port, servers=self.servers, check=self.check)
        )
        checked = subprocess.run([binary, "-c", "-q", "-f", str(config)], capture_output=True, text=True, check=False)
        if checked.returncode != 0:
            raise LocalRegionError(f"haproxy config invalid: {checked.stderr.strip() or checked.stdout.strip()}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(lambda: http_status(f"http://127.0.0.1:{self.stats_port}/stats") == 200, 20, "haproxy stats")

    def stats(self) -> dict[str, ServerStats]:
        """Per-server state and counters from HAProxy's CSV stats (the backend row is BACKEND)."""
        response = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=10.0, trust_env=False)
        response.raise_for_status()
        rows = csv.DictReader(io.StringIO(response.text.lstrip("# ")))
        result: dict[str, ServerStats] = {}
        for row in rows:
            if row["pxname"] != BACKEND:
                continue
            result[row["svname"]] = ServerStats(
                name=row["svname"],
                status=row["status"],
                retries=int(row["wretr"] or 0),
                redispatches=int(row["wredis"] or 0),
                responses_5xx=int(row["hrsp_5xx"] or 0),
                sessions_total=int(row["stot"] or 0),
            )
        return result

    def in_rotation(self, name: str) -> bool | None:
        """UP, or "UP 1/3" (failing checks but not yet taken out); not DOWN, "DOWN 1/2" or MAINT.
        None when the stats page did not answer (a starved machine), so pollers just poll again."""
        try:
            return self.stats()[name].status.startswith("UP")
        except httpx.HTTPError:
            return None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# --- the region ---------------------------------------------------------------------------


@dataclass
class LocalRegion:
    """N instances behind one HAProxy. Use `start()`/`stop()` or `with local_region(...)`."""

    workdir: Path
    size: int = 2
    # Fresh credentials per region: nothing to leak, nothing hard-coded.
    api_key: str = field(default_factory=lambda: "sk-local-" + secrets.token_hex(12))
    metrics_token: str = field(default_factory=lambda: secrets.token_hex(12))
    options: InstanceOptions = field(default_factory=InstanceOptions)
    instances: list[Instance] = field(default_factory=list)
    haproxy: HAProxy | None = None

    @property
    def url(self) -> str:
        assert self.haproxy is not None
        return self.haproxy.url

    @property
    def lb(self) -> HAProxy:
        assert self.haproxy is not None
        return self.haproxy

    def start(self, watch_args: Sequence[Sequence[str]] | None = None) -> float:
        """Launch, then wait until every instance is ready and UP; the seconds it took."""
        started = time.monotonic()
        self.launch(watch_args)
        self.wait_up(self.options.engine_start_timeout_s)
        return time.monotonic() - started

    def launch(self, watch_args: Sequence[Sequence[str]] | None = None) -> None:
        """Start every instance (engines load in parallel) and HAProxy; returns at once."""
        if not (self.options.model / "config.json").exists():
            raise LocalRegionError(f"model missing at {self.options.model}: run `make setup`")
        for index in range(self.size):
            instance = Instance(f"i{index + 1}", self.workdir, self.api_key, self.metrics_token, self.options)
            instance.port = free_port()
            self.instances.append(instance)
            instance.start(watch_args[index] if watch_args else ())
        self.haproxy = HAProxy(self.workdir, [(i.name, i.port) for i in self.instances])
        self.haproxy.start()

    def wait_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for instance in self.instances:
            instance.wait_ready(max(deadline - time.monotonic(), 1.0))
        self.wait_in_rotation()

    def wait_in_rotation(self, timeout_s: float = 30.0) -> None:
        """Until HAProxy sees every instance UP (rise x interval after it went ready)."""
        names = [instance.name for instance in self.instances]
        wait_until(
            lambda: all(self.lb.in_rotation(name) for name in names),
            timeout_s,
            "every instance UP in haproxy",
            0.2,
        )

    def instance(self, name: str) -> Instance:
        for instance in self.instances:
            if instance.name == name:
                return instance
        raise KeyError(name)

    def stop(self) -> None:
        """Stop HAProxy and every instance (and its engine); safe to call twice."""
        if self.haproxy is not None:
            self.haproxy.stop()
        for instance in self.instances:
            instance.stop()


@contextlib.contextmanager
def local_region(workdir: Path, size: int = 2, **kwargs: object) -> Iterator[LocalRegion]:
    region = LocalRegion(workdir, size, **kwargs)  # type: ignore[arg-type]
    try:
        region.start()
        yield region
    finally:
        region.stop()
