"""A throwaway redis-server on a free loopback port (no persistence): the region-wide tier of
the response cache and the rate limits, for the tests and the feature bench."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from devkit.proc import LocalError, free_port, stop_process

START_TIMEOUT_S = 20.0


def redis_binary() -> str | None:
    return shutil.which("redis-server")


@contextmanager
def local_redis(workdir: Path, timeout_s: float = START_TIMEOUT_S) -> Iterator[str]:
    """`redis://127.0.0.1:<port>/0` of a redis-server running in `workdir`; stopped on exit.
    LocalError when redis-server is missing or does not answer in time."""
    binary = redis_binary()
    if binary is None:
        raise LocalError("redis-server is not installed (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.poll() is not None and proc.stdout else ""
                    raise LocalError(f"redis-server did not start on port {port}: {out[-2000:]}") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        stop_process(proc)
        if proc.stdout:
            proc.stdout.close()
