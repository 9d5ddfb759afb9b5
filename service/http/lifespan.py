"""What a gateway runs beside its requests, started and stopped with the app.

Startup: the engine (supervised or attached), the clouds' preemption watchers, the metrics
port. Shutdown, in order: the watchers, the drain, the engine, the feature chain (its Redis
clients, the streams' settlements), the engine client, the metrics port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI

from service.lifecycle import preemption
from service.lifecycle.state import ServiceState
from service.pipeline.chain import FeatureChain

log = logging.getLogger("service")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def gateway_lifespan(state: ServiceState, features: FeatureChain) -> Lifespan:
    """The app's lifespan for one gateway (`state`: what it holds; `features`: its chain)."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        engine = state.engine
        await engine.start()
        watchers = _preemption_watchers(state)
        metrics_server = _start_metrics_port(state)
        try:
            yield
        finally:
            for task in watchers:
                task.cancel()
            await state.drain.aclose()
            await engine.stop()
            await features.aclose()
            await engine.client.aclose()
            if metrics_server is not None:
                metrics_server.shutdown()
                metrics_server.server_close()
            log.info("service stopped")

    return lifespan


def _preemption_watchers(state: ServiceState) -> list[asyncio.Task[None]]:
    """A task per cloud watched (settings.watch_aws / watch_gcp); each starts the drain once."""
    settings = state.settings
    watchers: list[asyncio.Task[None]] = []
    if settings.watch_aws:
        watch = preemption.watch_aws(
            settings.aws_metadata_url,
            settings.aws_poll_interval_s,
            state.begin_drain,
            state.metrics.rebalance_recommendations.inc,
        )
        watchers.append(asyncio.create_task(watch))
    if settings.watch_gcp:
        watch = preemption.watch_gcp(settings.gcp_metadata_url, lambda reason: state.begin_drain(reason, gcp=True))
        watchers.append(asyncio.create_task(watch))
    return watchers


def _start_metrics_port(state: ServiceState) -> Any:
    """The metrics port's server (settings.metrics_port), or None without one."""
    settings = state.settings
    if settings.metrics_port is None:
        return None
    from prometheus_client import start_http_server

    server, _thread = start_http_server(
        settings.metrics_port, addr=settings.metrics_host, registry=state.metrics.registry
    )
    return server
