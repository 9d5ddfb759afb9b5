"""The vLLM OpenAI server as a child process: its command line, start, exit and stop.

Only the standard library and the settings: `python -m service` starts the engine with it
before importing the web stack, so the engine's long start overlaps the gateway's own
(about a second of imports), and the gateway is ready as soon as vLLM is.

The engine never outlives the gateway: it starts through `service.engine.launch`, which ties
it to the gateway with a parent-death signal (a SIGKILLed gateway takes its engine along).
Its output passes through the gateway (to the engine log file, or the gateway's stdout), which
keeps the last lines: an engine that exits during start with a configuration error (vLLM
rejects a setting) is recognised there, so the supervisor fails at once, naming the setting,
instead of restarting an engine that can never start.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from contract.facts import ENGINE_HOST
from service.config.settings import ServiceSettings

log = logging.getLogger("service.engine")

_EXIT_POLL_S = 0.05  # how often an exit is looked for (it is noticed within this)
_TAIL_LINES = 200  # engine output kept for the configuration-error check
# vLLM's verdicts on its own configuration: a pydantic validation error of one of its config
# classes (the message follows on the next lines), or an argparse error.
_CONFIG_ERROR = re.compile(r"ValidationError: \d+ validation errors? for (\w*Config)\b")
_ARG_ERROR = re.compile(r"error: (argument --[\w-]+: .*)$")
# Engine settings of the gateway, by the name vLLM uses for them in its messages.
_ENGINE_FLAGS = {
    "max_model_len": "--max-model-len",
    "quantization": "--quantization",
    "gpu_memory_utilization": "--gpu-memory-utilization",
    "served_model_name": "--served-model-name",
    "model": "--model",
}


def free_port(host: str = ENGINE_HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def gpu_present() -> bool:
    return Path("/dev/nvidiactl").exists() or Path("/dev/nvidia0").exists()


def engine_argv(settings: ServiceSettings, port: int, *, gpu: bool) -> list[str]:
    """The vLLM OpenAI server command line for these settings (nothing GPU-specific on CPU)."""
    assert settings.model is not None
    argv = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        settings.model,
        "--served-model-name",
        settings.served_model_name,
        "--host",
        ENGINE_HOST,
        "--port",
        str(port),
    ]
    if settings.max_model_len is not None:  # unset: the model's own context
        argv += ["--max-model-len", str(settings.max_model_len)]
    if settings.quantization:
        argv += ["--quantization", settings.quantization]
    if gpu:
        argv += ["--gpu-memory-utilization", str(settings.gpu_memory_utilization)]
    return argv + list(settings.engine_args)


def check_model_context(settings: ServiceSettings) -> None:
    """For a model on disk, a `max_model_len` above its context fails before the engine starts.
    Raises ValueError naming the flag."""
    if settings.model is None or settings.max_model_len is None:
        return
    try:
        config = json.loads((Path(settings.model) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # a hub id, or no readable config: the engine decides
    context = config.get("max_position_embeddings") if isinstance(config, dict) else None
    if isinstance(context, int) and settings.max_model_len > context:
        raise ValueError(
            f"max_model_len: {settings.max_model_len} is above the model's context ({context}, "
            f"max_position_embeddings in {settings.model}/config.json); leave it unset to use the model's own"
        )


def config_error(lines: list[str]) -> str | None:
    """vLLM's own verdict on its configuration in its output, as one line naming the flag.

    pydantic prints a validation error as a header, then per error an unindented field line
    (absent for a model-level check) and an indented message line."""
    for index, line in enumerate(lines):
        match = _ARG_ERROR.search(line)
        if match:
            return f"engine rejected its arguments: {match.group(1)}"
        header = _CONFIG_ERROR.search(line)
        if header is None:
            continue
        field, message = "", line.strip()
        for later in lines[index + 1 : index + 3]:
            if not later.strip():
                break
            if later[0].isspace():
                message = later.strip().removeprefix("Value error, ").split(" [type=")[0]
                break
            field = later.strip()
        where = f"{header.group(1)}.{field}" if field else header.group(1)
        detail = f"{where}: {message}"
        flag = next((flag for name, flag in _ENGINE_FLAGS.items() if name in detail), "--engine-args")
        return f"engine configuration error ({flag}): {detail}"
    return None


class EngineProcess:
    """One vLLM OpenAI server process in its own process group (it forks an engine core).

    `start()` is synchronous, so it can run before any event loop exists; `spawn()` (the
    supervisor's, once per start or restart) adopts an engine `start()` already began, or
    starts one. Exits are noticed by polling (`_EXIT_POLL_S`), which works the same under
    any event loop and for a process started before the loop.
    """

    def __init__(
        self, settings: ServiceSettings, argv: Callable[[ServiceSettings, int, bool], list[str]] | None = None
    ) -> None:
        self._settings = settings
        self._argv = argv or (lambda s, port, gpu: engine_argv(s, port, gpu=gpu))
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._adoptable = False
        self._tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        self._pump: threading.Thread | None = None
        self.port = 0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def returncode(self) -> int | None:
        return self._process.poll() if self._process else None

    @property
    def url(self) -> str:
        return f"http://{ENGINE_HOST}:{self.port}"

    def start(self) -> str:
        """Start the engine now (no event loop needed); the next `spawn()` adopts it."""
        settings = self._settings
        self.port = settings.engine_port or free_port()
        gpu = settings.device == "gpu" or (settings.device == "auto" and gpu_present())
        argv = self._argv(settings, self.port, gpu)
        if settings.engine_log_file is not None and self._log is None:
            self._log = settings.engine_log_file.open("ab")
        log.info("starting engine", extra={"argv": argv})
        launcher = [sys.executable, "-m", "service.engine.launch", str(os.getpid()), "--"]
        self._tail.clear()
        self._process = subprocess.Popen(
            launcher + argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **settings.engine_env} if settings.engine_env else None,
        )
        assert self._process.stdout is not None
        self._pump = threading.Thread(
            target=self._copy_output, args=(self._process.stdout,), name="engine-output", daemon=True
        )
        self._pump.start()
        self._adoptable = True
        return self.url

    def _copy_output(self, source: IO[bytes]) -> None:
        """Engine output -> the engine log (or this process's stdout); the last lines kept."""
        sink = self._log if self._log is not None else sys.stdout.buffer
        with contextlib.suppress(OSError, ValueError):
            for line in iter(source.readline, b""):
                self._tail.append(line.decode("utf-8", "replace").rstrip())
                with contextlib.suppress(OSError, ValueError):
                    sink.write(line)
                    sink.flush()
        source.close()

    def config_error(self) -> str | None:
        """The configuration error the engine printed before it exited, if any (after its exit)."""
        if self._pump is not None:
            self._pump.join(timeout=5)  # the exited engine's last lines
        return config_error(list(self._tail))

    async def spawn(self) -> str:
        """The engine's URL: the one `start()` began if not yet adopted, else a new one."""
        if self._adoptable and self._process is not None:
            self._adoptable = False
            return self.url
        url = self.start()
        self._adoptable = False
        return url

    async def wait(self) -> int:
        process = self._process
        assert process is not None
        while (code := process.poll()) is None:
            await asyncio.sleep(_EXIT_POLL_S)
        return code

    async def stop(self) -> None:
        process = self._process
        if process is None:
            return
        self._adoptable = False
        if process.poll() is None:
            self._signal_group(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.wait(), self._settings.engine_stop_timeout_s)
            except TimeoutError:
                log.warning("engine ignored SIGTERM; killing it", extra={"pid": process.pid})
        # The engine core and workers share the group: make sure none outlives the server.
        self._signal_group(process.pid, signal.SIGKILL)
        await self.wait()
        self._process = None

    def kill(self) -> None:
        """Synchronous last resort (the gateway failed before its event loop ran)."""
        process = self._process
        if process is not None:
            self._signal_group(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            self._process = None
        self._adoptable = False
        self.close()

    def close(self) -> None:
        if self._pump is not None:
            self._pump.join(timeout=5)
            self._pump = None
        if self._log is not None:
            self._log.close()
            self._log = None

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
