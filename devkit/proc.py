"""Processes, waiting and polling, bounded in time: one copy for the devkit, the demo, the benches
and the tests."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import httpx

from service.engine.process import free_port

__all__ = ["LocalError", "free_port", "http_status", "stop_process", "wait_until"]


class LocalError(RuntimeError):
    """A local component failed to start, answer or stop; the message is one line."""


def wait_until(predicate: Callable[[], object], timeout_s: float, what: str, interval_s: float = 0.1) -> float:
    """Poll `predicate` until it is truthy; the seconds it took. LocalError on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval_s)
    raise LocalError(f"timed out after {timeout_s:g} s waiting for {what}")


def http_status(url: str, timeout_s: float = 2.0, headers: dict[str, str] | None = None) -> int:
    """The status of GET `url`, 0 when it cannot be reached."""
    try:
        return httpx.get(url, timeout=timeout_s, headers=headers, trust_env=False).status_code
    except httpx.HTTPError:
        return 0


def stop_process(process: subprocess.Popen[bytes] | None, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`; nothing for a process that is gone (or None)."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout_s)
