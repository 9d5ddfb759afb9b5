"""The app factory: `create_app(settings, engine=...)` wires one gateway's parts together.

What runs beside the requests (the engine, the watchers, the metrics port) starts and stops in
the lifespan (`service.http.lifespan`); the framework's own errors are answered by
`service.http.handlers`. Building the app starts nothing (it reads the API keys), so a test can
build one around an engine client of its own.
"""

from __future__ import annotations

from fastapi import FastAPI

from service.api.protocol import PUBLIC_ENDPOINTS
from service.config.settings import ServiceSettings
from service.engine.process import EngineProcess
from service.engine.supervisor import EngineSupervisor
from service.http import routes
from service.http.handlers import install_error_handlers
from service.http.lifespan import gateway_lifespan
from service.http.middleware import GatewayMiddleware
from service.lifecycle.drain import DrainController
from service.lifecycle.inflight import InFlight
from service.lifecycle.state import ServiceState
from service.observability.metrics import GatewayMetrics
from service.pipeline.auth import ApiKeyAuth
from service.pipeline.chain import FeatureChain, build_pool_clients
from service.pipeline.gateway import Gateway
from service.pipeline.pools import PoolRouter
from service.upstream.client import EngineClient, HttpEngineClient


def build_engine(settings: ServiceSettings, process: EngineProcess | None = None) -> EngineSupervisor:
    """A supervised vLLM (settings.model; `process` when it was started early) or an
    attached engine (settings.engine_url)."""
    client = HttpEngineClient(
        settings.engine_url or "http://127.0.0.1:0",
        name="local",
        connect_timeout_s=settings.upstream_connect_timeout_s,
        read_timeout_s=settings.upstream_read_timeout_s,
        max_connections=settings.upstream_max_connections,
    )
    if settings.supervised and process is None:
        process = EngineProcess(settings)
    return EngineSupervisor(settings, client, process=process if settings.supervised else None)


def build_features(settings: ServiceSettings, local: EngineClient, metrics: GatewayMetrics) -> FeatureChain:
    """Cache, deadline, rate limits, pools and languages from the resolved settings."""
    features = settings.resolved_features()
    router = PoolRouter.from_settings(features.routing, local_model=settings.served_model_name)
    engines = build_pool_clients(router, features, local=local, local_model=settings.served_model_name)
    return FeatureChain(
        features, router=router, engines=engines, registry=metrics.registry, max_tokens_cap=settings.max_tokens_cap
    )


def create_app(
    settings: ServiceSettings,
    *,
    engine: EngineSupervisor | None = None,
) -> FastAPI:
    """Build the gateway. Raises ValueError (naming the setting) for unusable settings."""
    engine = engine or build_engine(settings)
    auth = ApiKeyAuth(settings.load_api_keys(), disabled=settings.auth_disabled)
    in_flight = InFlight()
    holder: list[ServiceState] = []
    drain = DrainController(in_flight, on_done=lambda: holder[0].request_exit(0, "drain finished"))
    metrics = GatewayMetrics(ready=lambda: holder[0].ready, draining=lambda: drain.draining)
    engine.on_restart = metrics.engine_restarts.inc
    engine.on_fatal = lambda reason: holder[0].request_exit(1, reason)
    features = build_features(settings, engine.client, metrics)
    gateway = Gateway(
        settings,
        health=engine.health,
        drain=drain,
        auth=auth,
        metrics=metrics,
        in_flight=in_flight,
        features=features,
    )
    state = ServiceState(settings, engine, drain, metrics, in_flight)
    holder.append(state)

    # No trailing-slash redirects: their Location would echo the client's Host header.
    app = FastAPI(
        lifespan=gateway_lifespan(state, features),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    app.state.service = state
    app.state.gateway = gateway
    app.include_router(routes.health)
    app.include_router(routes.api)
    if settings.metrics_token is not None:
        app.include_router(routes.metrics)
    app.add_middleware(
        GatewayMiddleware,
        metrics=metrics,
        in_flight=in_flight,
        api_paths=frozenset(endpoint.path for endpoint in PUBLIC_ENDPOINTS),
        known_paths=routes.KNOWN_PATHS,
        access_log=settings.access_log,
    )

    install_error_handlers(app)
    return app
