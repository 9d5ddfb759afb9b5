"""Process and HTTP helpers for the service tests (real processes on 127.0.0.1 only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devkit.proc import free_port, http_status, wait_until

REPO = Path(__file__).resolve().parents[2]
TINY_MODEL = REPO / ".cache" / "tiny-model"
SERVED = "tiny"
API_KEY = "sk-test-service-key"
METRICS_TOKEN = "metrics-test-token"
# Flags of a gateway attached to the session's engine: generous timeouts, because the test
# machine is shared and often loaded.
ATTACHED_ARGS = ("--probe-interval-s", "1", "--probe-timeout-s", "60", "--upstream-connect-timeout-s", "30")


@dataclass
class Gateway:
    """A `python -m service` process."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    engine_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def health(self, path: str = "/health/ready") -> httpx.Response:
        return httpx.get(self.url + path, timeout=5.0)

    def wait_ready(self, timeout_s: float) -> float:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"gateway exited with {self.process.returncode}:\n{self.log_tail()}")
            return http_status(self.url + "/health/ready") == 200

        return wait_until(ready, timeout_s, f"{self.url}/health/ready")

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_s: float = 60.0, *, drain: bool = False) -> None:
        """SIGTERM (drain) or two SIGINTs (the second skips the drain); SIGKILL past the timeout."""
        if self.process.poll() is None:
            if drain:
                self.process.send_signal(signal.SIGTERM)
            else:
                self.process.send_signal(signal.SIGINT)
                time.sleep(0.2)
                self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# One API key drives all the load here: raise its per-key rate limit far above the load
# (the limiter itself stays on; tests/service/test_features_gateway.py exercises it).
LOAD_TEST_RATE_LIMIT_ENV = {
    "LLM_SERVICE_FEATURES__RATE_LIMIT__REQUESTS_PER_MINUTE": "1000000",
    "LLM_SERVICE_FEATURES__RATE_LIMIT__TOKENS_PER_MINUTE": "1000000000",
}


def start_gateway(tmp: Path, args: list[str], *, name: str, env: dict[str, str] | None = None) -> Gateway:
    port = free_port()
    keys = tmp / "api-keys"
    keys.write_text(f"# test keys\n{API_KEY}\n")
    log_path = tmp / f"{name}.log"
    argv = [
        sys.executable,
        "-m",
        "service",
        "--served-model-name",
        SERVED,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-keys-file",
        str(keys),
        "--metrics-token",
        METRICS_TOKEN,
        *args,
    ]
    full_env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", **LOAD_TEST_RATE_LIMIT_ENV, **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    return Gateway(process=process, port=port, log_path=log_path)


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels` (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{key}="{val}"' in label_text for key, val in labels.items()):
            total += float(value)
    return total
