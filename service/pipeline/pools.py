"""Model pools and the routing decision for one request.

The fleet file lists pools (`routing.pools`): a name, the served model name clients may
ask for, the intents it takes (general/code/math) and either a remote URL or none (the
local engine). `PoolRouter.route(model, text)`:

- `model` is "auto" or the configured default (or missing; this holds even when the
  default names a pool's model): classify `text` (the last user message) and pick the
  first pool taking that intent, else the first pool taking "general", else the first;
- `model` names a pool's model: that pool, no classification;
- anything else: `ModelNotFoundError` (the gateway answers 404 `model_not_found`).

With no pools configured, the local engine is the only pool and takes every intent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contract.instance import PoolRoute
from service.config.features import RoutingSettings
from service.pipeline.intent import Intent, classify

AUTO = "auto"
MODEL_USED_HEADER = "x-model-used"


class ModelNotFoundError(LookupError):
    """The requested model is not served here (OpenAI: 404, code `model_not_found`)."""

    code = "model_not_found"
    param = "model"

    def __init__(self, model: str, available: Sequence[str]) -> None:
        self.model = model
        self.available = tuple(available)
        super().__init__(f"The model '{model}' does not exist; available models: {', '.join(self.available)}")


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    model: str
    intents: frozenset[Intent]
    url: str | None = None  # None: the local engine

    @property
    def is_local(self) -> bool:
        return self.url is None

    @classmethod
    def from_spec(cls, spec: PoolRoute) -> Pool:
        return cls(
            name=spec.name,
            model=spec.model,
            intents=frozenset(Intent(i) for i in spec.intents),
            url=spec.url.rstrip("/") if spec.url else None,
        )


@dataclass(frozen=True, slots=True)
class RouteDecision:
    pool: Pool
    intent: Intent | None  # None: the client named the model, nothing was classified

    @property
    def model(self) -> str:
        """The model the request goes to: the response's `model` and `x-model-used`."""
        return self.pool.model

    @property
    def classified(self) -> bool:
        return self.intent is not None


class PoolRouter:
    def __init__(self, pools: Sequence[Pool], *, default_model: str = AUTO) -> None:
        if not pools:
            raise ValueError("at least one pool is needed")
        self.pools = tuple(pools)
        self.default_model = default_model
        self._by_model = {p.model: p for p in self.pools}
        if len(self._by_model) != len(self.pools):
            raise ValueError("two pools serve the same model name")
        self._aliases = {AUTO, default_model}
        self._by_intent = {intent: self._pick(intent) for intent in Intent}

    @classmethod
    def from_settings(cls, settings: RoutingSettings, *, local_model: str) -> PoolRouter:
        """Pools from the settings (the fleet's `routing.pools`); none: the local engine
        serving `local_model` takes everything."""
        if settings.pools:
            pools = [Pool.from_spec(p) for p in settings.pools]
        else:
            pools = [Pool(name="local", model=local_model, intents=frozenset(Intent))]
        return cls(pools, default_model=settings.default_model)

    def _pick(self, intent: Intent) -> Pool:
        for wanted in (intent, Intent.GENERAL):
            for pool in self.pools:
                if wanted in pool.intents:
                    return pool
        return self.pools[0]

    @property
    def model_names(self) -> list[str]:
        """What /v1/models lists: every pool's model, then the routing aliases."""
        names = [p.model for p in self.pools]
        return names + sorted(a for a in self._aliases if a not in self._by_model)

    def pool_for_intent(self, intent: Intent) -> Pool:
        return self._by_intent[intent]

    def check_model(self, model: str) -> None:
        """The one test of a requested model: a pool's model or a routing alias, else
        `ModelNotFoundError`."""
        if model not in self._aliases and model not in self._by_model:
            raise ModelNotFoundError(model, self.model_names)

    def route(self, model: str | None, text: str) -> RouteDecision:
        if model is None or model in self._aliases:
            intent = classify(text)
            return RouteDecision(self._by_intent[intent], intent)
        self.check_model(model)
        return RouteDecision(self._by_model[model], None)
