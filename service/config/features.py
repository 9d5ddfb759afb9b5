"""Settings of the gateway's optional features: response cache, timeout fallback, rate
limits, intent routing across model pools and multilingual answers.

Each class is a nested section of the gateway's settings (`ServiceSettings.features`;
pydantic-settings reads them from the environment with a `__` delimiter, e.g.
`LLM_SERVICE_FEATURES__CACHE__TTL_S=300`).
On an instance, the fleet file's values (rate limits, cache TTL, pools, the language
instruction) arrive in these variables through the instance contract
(`contract.instance.FeaturesContract`).
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from contract.instance import PoolRoute


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CacheSettings(_Section):
    """Response cache for deterministic requests (temperature 0, or opted in)."""

    enabled: bool = True
    ttl_s: float = Field(default=600.0, gt=0, description="seconds an answer stays servable")
    max_entries: int = Field(default=4096, ge=1, description="in-memory LRU size per instance")
    redis_url: str | None = Field(
        default=None,
        pattern=r"^(redis|rediss|unix)://",
        description="shared tier for a region's instances; empty: memory only",
    )
    key_prefix: str = Field(default="llm-fleet:cache:", min_length=1)
    # Requests with temperature > 0 are cached only when the client sends this header
    # with a true value ("1", "true", "yes"), and only if `allow_opt_in` is on.
    allow_opt_in: bool = True
    opt_in_header: str = Field(default="x-cache-opt-in", pattern=r"^[a-z0-9-]+$")
    # Bound on a stored answer (serialized JSON); bigger answers are not cached.
    max_entry_bytes: int = Field(default=1_000_000, ge=1024)
    redis_timeout_s: float = Field(default=0.25, gt=0, le=10)
    # "key": an answer is served only to the API key that asked for it (the default: a hit,
    # and its `x-cache` header, must not tell one key what another asked). "shared": every
    # key of the region shares entries (more hits; for fleets whose keys are one tenant).
    scope: Literal["key", "shared"] = Field(
        default="key", description="key: answers stay with the API key that asked; shared: all keys share them"
    )


class FallbackSettings(_Section):
    """Per-request deadline; when it passes, a cached answer (if any) is the fallback."""

    default_timeout_s: float = Field(default=120.0, gt=0)
    min_timeout_s: float = Field(default=0.1, gt=0)
    max_timeout_s: float = Field(default=300.0, gt=0)
    header: str = Field(default="x-request-timeout", pattern=r"^[a-z0-9-]+$")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.min_timeout_s <= self.default_timeout_s <= self.max_timeout_s:
            raise ValueError("need min_timeout_s <= default_timeout_s <= max_timeout_s")
        return self


class RateLimitSettings(_Section):
    """Token buckets per API key: requests per minute and tokens per minute."""

    enabled: bool = True
    requests_per_minute: int = Field(default=100, ge=1)
    tokens_per_minute: int = Field(default=200_000, ge=1)
    redis_url: str | None = Field(
        default=None,
        pattern=r"^(redis|rediss|unix)://",
        description="region-wide limits through Redis; empty: per instance",
    )
    key_prefix: str = Field(default="llm-fleet:rl:", min_length=1)
    redis_timeout_s: float = Field(default=0.25, gt=0, le=10)


class RoutingSettings(_Section):
    """Intent routing: `auto` (or `default_model`) is classified and sent to a pool."""

    default_model: str = Field(default="auto", min_length=1)
    pools: tuple[PoolRoute, ...] = ()
    # Remote pools (a `url`): the gateway's own client to them, with its own timeouts.
    remote_connect_timeout_s: float = Field(default=5.0, gt=0)
    remote_read_timeout_s: float = Field(default=300.0, gt=0, description="per chunk")
    remote_max_connections: int = Field(default=256, ge=1)
    remote_api_key: SecretStr | None = Field(default=None, description="bearer key sent to remote pools")


class LanguageSettings(_Section):
    """Optional system instruction to answer in the language the user wrote in."""

    instruction_enabled: bool = False
    template: str = Field(
        default="Answer in {language}, the language the user wrote in, unless asked otherwise.",
        min_length=1,
    )

    @model_validator(mode="after")
    def _template_names_language(self) -> Self:
        if "{language}" not in self.template:
            raise ValueError("template must contain the placeholder {language}")
        try:
            self.template.format(language="English")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"template is not a valid format string: {exc}") from None
        return self


class FeaturesSettings(_Section):
    cache: CacheSettings = CacheSettings()
    fallback: FallbackSettings = FallbackSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    routing: RoutingSettings = RoutingSettings()
    language: LanguageSettings = LanguageSettings()
