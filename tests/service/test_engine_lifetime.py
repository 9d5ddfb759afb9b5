"""A newcomer's first run, and an engine that never outlives its gateway.

- The README's own `python -m service` command on the tiny model starts and answers (the
  engine's context is the model's own unless the fleet sets it).
- A deterministic engine configuration error stops the service at once with one line
  naming the flag, not a restart loop: above the model's context (checked before vLLM
  starts), and a value vLLM itself rejects (recognised in its output).
- The engine dies with its gateway, even when the gateway is killed with SIGKILL.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from devkit.proc import free_port, http_status, wait_until
from service.engine.launch import PR_SET_PDEATHSIG
from tests.service.helpers import API_KEY, REPO, SERVED, TINY_MODEL

pytestmark = [pytest.mark.engine, pytest.mark.slow]

README = REPO / "README.md"
START_TIMEOUT_S = 420.0


def readme_service_command() -> list[str]:
    """The README's `python -m service` command, continuation lines joined."""
    text = README.read_text(encoding="utf-8")
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = block.replace("\\\n", " ")
        for line in joined.splitlines():
            if "-m service " in line and "--model" in line:
                return shlex.split(line)
    raise AssertionError("README.md: no `python -m service` command in a bash block")


def _engine_group(gateway: psutil.Process) -> list[psutil.Process]:
    return [
        child
        for child in gateway.children(recursive=True)
        if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    ]


def test_the_readme_command_serves_and_its_engine_dies_with_a_sigkilled_gateway(tmp_path: Path) -> None:
    argv = readme_service_command()
    port, metrics_port = free_port(), free_port()
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{API_KEY}\n", encoding="utf-8")
    replaced = {"8000": str(port), "9100": str(metrics_port), "keys.txt": str(keys)}
    argv = [replaced.get(arg, arg) for arg in argv]
    assert argv[0].endswith("python"), argv
    assert Path(REPO / argv[0]).exists(), argv
    log = tmp_path / "gateway.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    with log.open("wb") as out:
        gateway = subprocess.Popen(argv, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until(
            lambda: gateway.poll() is not None or http_status(f"http://127.0.0.1:{port}/health/ready") == 200,
            START_TIMEOUT_S,
            "the README's service to be ready",
            0.5,
        )
        assert gateway.poll() is None, log.read_text()[-3000:]
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            headers={"authorization": f"Bearer {API_KEY}"},
            json={"model": SERVED, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        assert "restarting engine" not in log.read_text()
        engine = _engine_group(psutil.Process(gateway.pid))
        assert any("vllm" in " ".join(p.cmdline()) for p in engine), [p.cmdline() for p in engine]
        gateway.kill()  # SIGKILL: no drain, no cleanup code runs in the gateway
        gateway.wait(10)
        _, alive = psutil.wait_procs(engine, timeout=30)
        assert not alive, f"engine processes outlived a SIGKILLed gateway: {[p.pid for p in alive]}"
        assert http_status(f"http://127.0.0.1:{port}/health/live") == 0
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait(10)


def _run_service(*args: str, timeout_s: float = 300) -> tuple[int, str, float]:
    started = time.monotonic()
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "service", "--served-model-name", SERVED, "--auth-disabled"),
            *("--port", str(free_port()), "--model", str(TINY_MODEL), *args),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"},
    )
    return proc.returncode, proc.stderr, time.monotonic() - started


def test_a_context_above_the_models_fails_at_once_naming_the_flag() -> None:
    code, err, seconds = _run_service("--max-model-len", "8192", timeout_s=60)
    assert code == 2
    lines = err.strip().splitlines()
    assert lines == [
        "error: --max-model-len (LLM_SERVICE_MAX_MODEL_LEN): 8192 is above the model's context (4096, "
        f"max_position_embeddings in {TINY_MODEL}/config.json); leave it unset to use the model's own"
    ], err
    assert seconds < 30, "no engine was started"


def test_a_setting_vllm_rejects_stops_the_service_without_restarts() -> None:
    """vLLM refuses max_num_seqs 0 (its scheduler config): the supervisor recognises the
    configuration error in the engine's output and gives up at once (no restart loop)."""
    code, err, _ = _run_service("--engine-args=--enforce-eager,--max-num-seqs=0", "--log-level", "error")
    assert code == 1, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: engine configuration error (--engine-args): "), last
    assert "SchedulerConfig.max_num" in last, last
    assert "restarting engine" not in err


def test_the_launcher_ties_a_child_to_its_parent(tmp_path: Path) -> None:
    """The mechanism alone: a parent that starts `sleep` through the launcher, then dies by SIGKILL."""
    assert PR_SET_PDEATHSIG == 1
    pid_file = tmp_path / "child.pid"
    parent_code = (
        "import subprocess, sys, os, time\n"
        "child = subprocess.Popen([sys.executable, '-m', 'service.engine.launch', str(os.getpid()), '--',"
        " 'sleep', '300'], start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(300)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=REPO)
    try:
        wait_until(pid_file.exists, 30, "the child's pid")
        launcher = psutil.Process(int(pid_file.read_text()))
        wait_until(lambda: bool(launcher.children()), 30, "the launcher to start its child")
        group = [launcher, *launcher.children(recursive=True)]
        assert any(p.name() == "sleep" for p in group)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        _, alive = psutil.wait_procs(group, timeout=10)
        assert not alive, f"the launcher's group outlived its SIGKILLed parent: {alive}"
    finally:
        if parent.poll() is None:
            parent.kill()
