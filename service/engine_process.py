"""The vLLM OpenAI server as a child process: its command line, start, exit and stop.

Only the standard library and the settings: `python -m service` starts the engine with it
before importing the web stack, so the engine's long start overlaps the gateway's own
(about a second of imports), and the gateway is ready as soon as vLLM is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import IO

from service.settings import ServiceSettings

log = logging.getLogger("service.engine")

ENGINE_HOST = "127.0.0.1"
_EXIT_POLL_S = 0.05  # how often an exit is looked for (it is noticed within this)


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
        "--max-model-len",
        str(settings.max_model_len),
    ]
    if settings.quantization:
        argv += ["--quantization", settings.quantization]
    if gpu:
        argv += ["--gpu-memory-utilization", str(settings.gpu_memory_utilization)]
    return argv + list(settings.engine_args)


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
        self._process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
            start_new_session=True,
        )
        self._adoptable = True
        return self.url

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
        if self._log is not None:
            self._log.close()
            self._log = None

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
