"""Run the app under uvicorn with the gateway's own signal handling.

SIGTERM (and a first SIGINT) start a drain instead of uvicorn's immediate shutdown; the
drain ends the server itself. A second SIGINT stops at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sys
from collections.abc import Callable, Generator

import uvicorn

from service.config.settings import ServiceSettings
from service.engine.process import EngineProcess
from service.http.app import build_engine, create_app
from service.http.header_timeout import header_timeout_protocol
from service.lifecycle.state import ServiceState

log = logging.getLogger("service")


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_terminate: Callable[[str], None]) -> None:
        super().__init__(config)
        self._on_terminate = on_terminate
        self._interrupts = 0

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_terminate, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._interrupt)
        try:
            yield
        finally:
            loop.remove_signal_handler(signal.SIGTERM)
            loop.remove_signal_handler(signal.SIGINT)

    def _interrupt(self) -> None:
        self._interrupts += 1
        if self._interrupts == 1:
            self._on_terminate("SIGINT")
        else:
            log.warning("second SIGINT: stopping now")
            self.should_exit = True
            self.force_exit = True


def serve(settings: ServiceSettings, engine_process: EngineProcess | None = None) -> int:
    """Serve until a drain or a fatal engine error ends it; returns the exit status.
    `engine_process`: the supervised engine, when it was started before this module loaded."""
    app = create_app(settings, engine=build_engine(settings, engine_process))
    state: ServiceState = app.state.service
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=header_timeout_protocol(settings.header_timeout_s),
        lifespan="on",
        access_log=False,
        log_config=None,
        server_header=False,
        timeout_keep_alive=math.ceil(settings.keepalive_s),  # outlasts every load balancer (contract.facts)
        timeout_graceful_shutdown=max(math.ceil(settings.drain_finish_s), 1),
        backlog=2048,
    )
    server = _DrainingServer(config, on_terminate=state.begin_drain)

    def stop() -> None:
        server.should_exit = True

    state.stop_server = stop
    server.run()
    if not server.started and state.exit_code == 0:
        return 1
    if state.exit_code != 0 and state.exit_reason:
        print(f"error: {state.exit_reason}", file=sys.stderr, flush=True)
    return state.exit_code
