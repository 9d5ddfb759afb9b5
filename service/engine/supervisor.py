"""The engine's lifecycle: spawn vLLM (or attach to a running engine), warm it up, probe it,
restart it with exponential backoff, and give up after the restart limit. The process
itself is `service.engine.process`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from service.config.settings import ServiceSettings
from service.engine.health import EngineHealth, EnginePhase
from service.engine.process import EngineProcess
from service.upstream.client import EngineUnavailableError, HttpEngineClient

log = logging.getLogger("service.engine")

_POLL_S = 0.1
_WARMUP_TIMEOUT_S = 120.0


class EngineSupervisor:
    """Drives `EngineHealth` for a supervised engine (`process`) or an attached one (None)."""

    def __init__(
        self,
        settings: ServiceSettings,
        client: HttpEngineClient,
        *,
        process: EngineProcess | None,
        on_restart: Callable[[], None] = lambda: None,
        on_fatal: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.process = process
        self.health = EngineHealth()
        self.on_restart = on_restart
        self.on_fatal = on_fatal
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def start(self) -> None:
        """Start supervising in the background; returns at once."""
        self._task = asyncio.create_task(self._run(), name="engine-supervisor")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.process is not None:
            await self.process.stop()
            self.process.close()
        self.health.set(EnginePhase.STOPPED, "engine stopped")

    async def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            if self.process is not None:
                self.health.set(EnginePhase.STARTING, "engine starting")
                self.client.rebase(await self.process.spawn())
            up = await self._bring_up()
            if up:
                failures = 0
                await self._watch()
            if self._stop.is_set():
                return
            if self.process is None:  # attached: nothing to restart, keep trying to reach it
                await asyncio.sleep(self.settings.probe_interval_s)
                continue
            await self.process.stop()
            if not up:
                failures += 1
            if self.health.phase is EnginePhase.FAILED:
                return
            if failures > self.settings.restart_limit:
                self._give_up(f"engine failed to start {failures} times in a row; giving up")
                return
            delay = min(
                self.settings.restart_backoff_s * 2 ** max(failures - 1, 0), self.settings.restart_backoff_max_s
            )
            self.health.set(EnginePhase.RESTARTING, f"{self.health.reason}; restarting in {delay:.1f} s")
            log.warning("restarting engine", extra={"delay_s": delay, "failures": failures})
            await asyncio.sleep(delay)
            self.health.restarts += 1
            self.on_restart()

    async def _bring_up(self) -> bool:
        """Wait for the engine's /health, then run the warm-up generation."""
        deadline = time.monotonic() + self.settings.engine_start_timeout_s
        while not await self.client.healthy(timeout_s=2.0):
            if self._exited():
                self.health.set(EnginePhase.DEAD, f"engine exited during start (code {self._returncode()})")
                if self.process is not None and (error := self.process.config_error()):
                    # The same settings fail the same way every time: no restart loop.
                    self._give_up(error)
                return False
            if time.monotonic() > deadline:
                self.health.set(EnginePhase.DEAD, "engine did not start in time")
                return False
            await asyncio.sleep(_POLL_S)
        self.health.set(EnginePhase.WARMING, "warm-up generation")
        try:
            latency = await self.client.generate_one_token(self.settings.served_model_name, _WARMUP_TIMEOUT_S)
        except EngineUnavailableError as exc:
            self.health.set(EnginePhase.DEAD, f"warm-up failed: {exc}")
            return False
        self._probe_ok(latency)
        log.info("engine ready", extra={"warmup_s": round(latency, 3), "engine": self.client.base_url})
        return True

    async def _watch(self) -> None:
        """Probe until the engine dies or hangs past the threshold."""
        settings = self.settings
        exited = asyncio.create_task(self.process.wait()) if self.process is not None else None
        try:
            while True:
                if exited is not None:
                    done, _ = await asyncio.wait({exited}, timeout=settings.probe_interval_s)
                    if done:
                        self.health.set(EnginePhase.DEAD, f"engine exited (code {exited.result()})")
                        log.error("engine exited", extra={"code": exited.result()})
                        return
                else:
                    await asyncio.sleep(settings.probe_interval_s)
                try:
                    latency = await self.client.generate_one_token(settings.served_model_name, settings.probe_timeout_s)
                except EngineUnavailableError as exc:
                    if self._exited():
                        continue  # reported by the exit branch on the next turn
                    silent_for = time.monotonic() - (self.health.last_probe_ok or 0.0)
                    if silent_for >= settings.hang_threshold_s:
                        self.health.set(EnginePhase.HUNG, f"engine hung: no successful probe for {silent_for:.0f} s")
                        log.error("engine hung", extra={"silent_s": round(silent_for, 1)})
                        return
                    self.health.set(EnginePhase.PROBE_FAILING, str(exc))
                    log.warning("engine probe failed", extra={"error": str(exc)})
                    continue
                self._probe_ok(latency)
        finally:
            if exited is not None and not exited.done():
                exited.cancel()

    def _give_up(self, reason: str) -> None:
        self.health.set(EnginePhase.FAILED, reason)
        log.error(reason)
        self.on_fatal(reason)

    def _probe_ok(self, latency: float) -> None:
        self.health.last_probe_ok = time.monotonic()
        self.health.last_probe_latency_s = latency
        self.health.set(EnginePhase.READY, "engine ready")

    def _exited(self) -> bool:
        return self.process is not None and self.process.returncode is not None

    def _returncode(self) -> int | None:
        return self.process.returncode if self.process is not None else None
