"""Pool routing from the fleet file's routing.pools, and the feature settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from infra.boot import instance_contract
from infra.config import DEFAULT_FLEET_FILE, Fleet, load_fleet, parse_fleet_text
from service.config.features import FeaturesSettings, RoutingSettings
from service.pipeline.intent import Intent
from service.pipeline.pools import ModelNotFoundError, PoolRouter

POOLS_YAML = """
routing:
  default_model: auto
  pools:
    - {name: general, model: qwen-general, intents: [general]}
    - {name: code, model: qwen-coder, intents: [code], url: "http://10.0.0.7:8000/"}
    - {name: math, model: qwen-math, intents: [math], url: "https://math.internal.example.com"}
"""


def fleet_with_pools(text: str = POOLS_YAML) -> Fleet:
    base = Path(DEFAULT_FLEET_FILE).read_text(encoding="utf-8")
    return parse_fleet_text(base + text, "regions.yaml")


def features_of(fleet: Fleet) -> FeaturesSettings:
    """The feature settings an instance of the fleet's first region runs with (its contract)."""
    contract = instance_contract(fleet, fleet.regions[0])
    return FeaturesSettings.model_validate(contract.service.features.model_dump())


def router() -> PoolRouter:
    settings = features_of(fleet_with_pools())
    return PoolRouter.from_settings(settings.routing, local_model="qwen-general")


@pytest.mark.parametrize(
    ("text", "pool", "intent"),
    [
        ("Write a Go function that reverses a slice.", "code", Intent.CODE),
        ("用Java实现一个单例模式", "code", Intent.CODE),
        ("Solve 3x + 4 = 19", "math", Intent.MATH),
        ("计算 15 × 16 等于多少？", "math", Intent.MATH),
        ("What should I see in Lisbon?", "general", Intent.GENERAL),
        ("帮我写一封感谢信", "general", Intent.GENERAL),
    ],
)
def test_auto_is_classified_and_sent_to_the_pool_for_its_intent(text: str, pool: str, intent: Intent) -> None:
    decision = router().route("auto", text)
    assert decision.pool.name == pool
    assert decision.intent == intent
    assert decision.model == decision.pool.model


def test_explicit_model_goes_straight_to_its_pool() -> None:
    decision = router().route("qwen-math", "Write a Python web server")
    assert decision.pool.name == "math"
    assert not decision.classified
    assert decision.pool.url == "https://math.internal.example.com"
    assert router().route("qwen-coder", "hi").pool.url == "http://10.0.0.7:8000"  # no trailing slash


def test_missing_model_and_configured_default_are_classified() -> None:
    r = PoolRouter(router().pools, default_model="qwen-general")
    assert r.route(None, "fix this segfault in my C++ code").pool.name == "code"
    # The configured default is classified even though it names a pool's model.
    assert r.route("qwen-general", "integrate x^2 dx").pool.name == "math"
    assert r.route("auto", "integrate x^2 dx").pool.name == "math"


def test_unknown_model_is_model_not_found() -> None:
    with pytest.raises(ModelNotFoundError) as err:
        router().route("gpt-4o", "hello")
    assert err.value.code == "model_not_found"
    assert err.value.param == "model"
    assert str(err.value) == (
        "The model 'gpt-4o' does not exist; available models: qwen-general, qwen-coder, qwen-math, auto"
    )


def test_missing_intent_falls_back_to_the_general_pool() -> None:
    fleet = fleet_with_pools(
        """
routing:
  pools:
    - {name: big, model: big, intents: [code]}
    - {name: chat, model: chat, intents: [general], url: "http://127.0.0.1:9"}
"""
    )
    r = PoolRouter.from_settings(features_of(fleet).routing, local_model="unused")
    assert r.pool_for_intent(Intent.MATH).name == "chat"
    assert r.pool_for_intent(Intent.CODE).name == "big"
    assert r.pool_for_intent(Intent.CODE).is_local


def test_no_pools_means_the_local_engine_takes_everything() -> None:
    r = PoolRouter.from_settings(RoutingSettings(), local_model="qwen2.5-7b-instruct")
    assert r.model_names == ["qwen2.5-7b-instruct", "auto"]
    for text in ("hi", "def f(): pass", "1+1=?"):
        assert r.route("auto", text).model == "qwen2.5-7b-instruct"
    assert r.route("qwen2.5-7b-instruct", "hi").pool.is_local
    with pytest.raises(ValueError, match="same model name"):
        PoolRouter([r.pools[0], r.pools[0]])


def test_settings_from_the_fleet_file() -> None:
    fleet = load_fleet()
    s = features_of(fleet)
    assert s.rate_limit.requests_per_minute == 100 == fleet.service.rate_limit_rpm
    assert s.rate_limit.tokens_per_minute == fleet.service.rate_limit_tpm
    assert s.cache.ttl_s == fleet.service.cache_ttl_s
    assert s.routing.default_model == "auto"
    off = features_of(fleet.model_copy(update={"service": fleet.service.model_copy(update={"cache_ttl_s": 0})}))
    assert not off.cache.enabled


def test_settings_nest_into_the_gateways_environment_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    class GatewaySettings(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="LLM_", env_nested_delimiter="__")
        features: FeaturesSettings = FeaturesSettings()

    monkeypatch.setenv("LLM_FEATURES__CACHE__TTL_S", "30")
    monkeypatch.setenv("LLM_FEATURES__RATE_LIMIT__REQUESTS_PER_MINUTE", "7")
    monkeypatch.setenv("LLM_FEATURES__LANGUAGE__INSTRUCTION_ENABLED", "true")
    s = GatewaySettings().features
    assert (s.cache.ttl_s, s.rate_limit.requests_per_minute, s.language.instruction_enabled) == (30, 7, True)

    monkeypatch.setenv("LLM_FEATURES__CACHE__REDIS_URL", "http://nope")
    with pytest.raises(ValidationError) as err:
        GatewaySettings()
    assert [e["loc"] for e in err.value.errors()] == [("features", "cache", "redis_url")]


def test_unknown_feature_keys_are_refused() -> None:
    class Holder(BaseModel):
        features: FeaturesSettings

    with pytest.raises(ValidationError, match=r"features\.cache\.tll_s\n  Extra inputs are not permitted"):
        Holder.model_validate({"features": {"cache": {"tll_s": 5}}})
