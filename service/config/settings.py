"""Service settings: one pydantic-settings model, every field also a CLI flag.

Environment variables use the prefix ``LLM_SERVICE_`` (``--served-model-name`` ->
``LLM_SERVICE_SERVED_MODEL_NAME``). The nested ``features`` section (cache, fallback,
rate limits, routing, languages) uses ``__`` as the delimiter:
``LLM_SERVICE_FEATURES__CACHE__TTL_S=300``. Command-line flags win over the environment,
the environment over the defaults. On an instance the environment is the instance contract
(`contract.instance.ServiceContract`) that `infra` rendered from the fleet file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from contract.facts import AWS, GATEWAY_KEEPALIVE_S, GCP, METRICS_HOST, SERVICE_PORT
from contract.instance import ENV_PREFIX
from service.config.features import FeaturesSettings


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ServiceSettings(BaseSettings):
    """Everything the gateway and its engine supervisor read at start."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    # --- the model and the engine -------------------------------------------------------
    model: str | None = Field(default=None, description="model path or hub id the engine loads")
    served_model_name: str = Field(
        min_length=1, pattern=r"^[A-Za-z0-9._/:-]+$", description="model name clients ask for"
    )
    engine_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="attach to an already-running OpenAI-compatible engine; no supervision",
    )
    quantization: str | None = Field(
        default=None, description="vLLM --quantization method; empty: read from the checkpoint (W8A8, GPTQ)"
    )
    max_model_len: int | None = Field(
        default=None, ge=16, le=1_048_576, description="engine context length; empty: the model's own"
    )
    gpu_memory_utilization: float = Field(default=0.90, gt=0.05, le=0.99, description="GPU memory share (GPU only)")
    device: Literal["auto", "gpu", "cpu"] = Field(
        default="auto", description="auto: gpu when an NVIDIA device node exists"
    )
    engine_port: int = Field(default=0, ge=0, le=65535, description="engine port on 127.0.0.1; 0: a free port")
    engine_args: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="extra engine arguments, comma-separated (e.g. --enforce-eager)"
    )
    engine_env: dict[str, str] = Field(
        default_factory=dict,
        description='extra environment for the engine, a JSON object (e.g. {"VLLM_LOGGING_LEVEL": "DEBUG"})',
    )
    engine_log_file: Path | None = Field(default=None, description="engine stdout/stderr file; empty: inherit")
    engine_start_timeout_s: float = Field(default=900.0, gt=0, description="engine start + warm-up limit")
    engine_stop_timeout_s: float = Field(
        default=AWS.drain.engine_stop_s, gt=0, description="SIGTERM -> SIGKILL grace for the engine"
    )
    probe_interval_s: float = Field(default=5.0, gt=0, description="background 1-token probe period")
    probe_timeout_s: float = Field(default=10.0, gt=0, description="1-token probe timeout")
    hang_threshold_s: float = Field(
        default=60.0, gt=0, description="no successful probe for this long: engine hung (live 503, restart)"
    )
    restart_limit: int = Field(default=5, ge=0, description="consecutive failed restarts before exit 1")
    restart_backoff_s: float = Field(default=1.0, gt=0, description="first restart delay (doubles)")
    restart_backoff_max_s: float = Field(default=60.0, gt=0, description="restart delay ceiling")

    # --- the gateway ----------------------------------------------------------------------
    host: str = Field(default="0.0.0.0", description="gateway bind address")  # noqa: S104 - container port
    port: int = Field(default=SERVICE_PORT, ge=1, le=65535, description="gateway port")
    api_keys_file: Path | None = Field(default=None, description="file with API keys, one per line")
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="API keys, comma-separated (prefer the file)"
    )
    auth_disabled: bool = Field(default=False, description="serve without API keys (local use only)")
    max_body_bytes: int = Field(default=1_048_576, ge=1024, description="request body limit (413 above)")
    max_tokens_cap: int = Field(default=1024, ge=1, description="largest max_tokens a request may ask for")
    max_prompt_chars: int = Field(
        default=200_000, ge=1, description="prompt size limit in characters (the engine checks tokens)"
    )
    max_in_flight: int = Field(default=512, ge=1, description="API requests in flight before 429 (load shedding)")
    upstream_connect_timeout_s: float = Field(default=5.0, gt=0, description="engine connect timeout")
    upstream_read_timeout_s: float = Field(default=300.0, gt=0, description="engine read timeout (per chunk)")
    upstream_max_connections: int = Field(default=1024, ge=1, description="engine connection pool size")
    metrics_port: int | None = Field(default=None, ge=1, le=65535, description="serve /metrics on its own port")
    metrics_host: str = Field(
        default=METRICS_HOST, description="bind address of the metrics port (it answers without credentials)"
    )
    keepalive_s: float = Field(
        default=GATEWAY_KEEPALIVE_S,
        gt=0,
        description="idle keep-alive of client connections; above every load balancer's idle timeout",
    )
    metrics_token: SecretStr | None = Field(default=None, description="bearer token for /metrics on the main port")
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="log level")
    access_log: bool = Field(
        default=False, description="log every API request (errors, status >= 400, are always logged)"
    )

    # --- drain ------------------------------------------------------------------------------
    drain_serve_s: float = Field(
        default=AWS.drain.serve_s, ge=0, description="keep serving after readiness goes 503 (LB deregistration)"
    )
    drain_finish_s: float = Field(
        default=AWS.drain.finish_s, ge=0, description="then wait this long for in-flight requests"
    )
    gcp_drain_serve_s: float = Field(
        default=GCP.preemption_drain.serve_s, ge=0, description="serve window on GCP preemption (30 s notice)"
    )
    gcp_drain_finish_s: float = Field(
        default=GCP.preemption_drain.finish_s, ge=0, description="finish window on GCP preemption"
    )
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After on 503 while draining")
    watch_aws: bool = Field(
        default=False, description="poll IMDSv2 for the spot interruption notice (rebalance: counted, no drain)"
    )
    watch_gcp: bool = Field(default=False, description="watch the GCP metadata server for preemption")
    aws_metadata_url: str = Field(default="http://169.254.169.254", pattern=r"^https?://", description="IMDS base")
    gcp_metadata_url: str = Field(
        default="http://metadata.google.internal", pattern=r"^https?://", description="GCP metadata base"
    )
    aws_poll_interval_s: float = Field(default=2.0, gt=0, description="IMDS poll period (detect <= 5 s)")

    # --- abuse resistance: slow clients, per-key admission, bounds on one request's work -----
    header_timeout_s: float = Field(
        default=10.0, gt=0, description="time a client may take to send a request's headers; then the connection closes"
    )
    body_timeout_s: float = Field(
        default=30.0, gt=0, description="time a client may take to send a request body (408 after)"
    )
    max_in_flight_per_key: int = Field(
        default=128, ge=1, description="API requests one API key may have in flight on this instance (429 above)"
    )
    max_n: int = Field(
        default=16, ge=1, description="most sequences one request may generate: n (or best_of) x prompts (400 above)"
    )
    max_constraint_bytes: int = Field(
        default=32_768,
        ge=256,
        description="size limit of a request's structured-output constraints (schemas, regexes, grammars, choices)",
    )
    engine_time_limit_s: float = Field(
        default=120.0, gt=0, description="longest one request (a stream too) may hold the engine; then it is aborted"
    )

    # --- features: cache, timeout fallback, rate limits, intent routing, languages ----------
    redis_url: str | None = Field(
        default=None,
        pattern=r"^(redis|rediss|unix)://",
        description="Redis shared by a region's instances: response cache and rate limits (empty: per instance)",
    )
    features: FeaturesSettings = Field(
        default_factory=FeaturesSettings,
        description="feature settings; environment only: LLM_SERVICE_FEATURES__<SECTION>__<KEY>",
    )

    @field_validator("engine_args", "api_keys", mode="before")
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @model_validator(mode="after")
    def _engine_source(self) -> Self:
        if self.engine_url is None and not self.model:
            raise ValueError("model: required unless engine_url is set (--model or --engine-url)")
        if self.engine_url is not None and self.model:
            raise ValueError("model: give either --model (supervised engine) or --engine-url (attach), not both")
        if self.restart_backoff_max_s < self.restart_backoff_s:
            raise ValueError("restart_backoff_max_s: must be >= restart_backoff_s")
        return self

    @property
    def supervised(self) -> bool:
        return self.engine_url is None

    def resolved_features(self) -> FeaturesSettings:
        """The feature settings in force: defaults, then what the environment set explicitly;
        `redis_url` fills both Redis tiers unless a section names its own. Raises ValueError
        naming the setting."""
        merged = self.features.model_dump(exclude_unset=True)
        if self.redis_url is not None:
            for section in ("cache", "rate_limit"):
                merged.setdefault(section, {}).setdefault("redis_url", self.redis_url)
        try:
            return FeaturesSettings.model_validate(merged)
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in ("features", *error["loc"]))
            raise ValueError(f"{where}: {error['msg']}") from None

    def load_api_keys(self) -> tuple[bytes, ...]:
        """The accepted keys (file + environment), as bytes for constant-time compare.

        The key file is UTF-8 (a leading byte-order mark is ignored), one key per line;
        `#` starts a comment, on its own line or after a key; blank lines and the spaces
        around a key are ignored. A key is 1-256 visible ASCII characters other than `#`
        and `,` (what every HTTP client can send in a header); anything else stops the
        service with the line that holds it."""
        keys: list[str] = []
        for index, secret in enumerate(self.api_keys, start=1):
            key = secret.get_secret_value()
            if problem := api_key_problem(key):
                raise ValueError(f"api_keys: key {index} {problem}")
            keys.append(key)
        if self.api_keys_file is not None:
            try:
                text = self.api_keys_file.read_bytes().decode("utf-8").removeprefix("\ufeff")
            except OSError as exc:
                raise ValueError(f"api_keys_file: cannot read {self.api_keys_file}: {exc.strerror}") from exc
            except UnicodeDecodeError as exc:
                raise ValueError(f"api_keys_file: {self.api_keys_file} is not UTF-8 text ({exc.reason})") from exc
            for number, line in enumerate(text.splitlines(), start=1):
                key = line.partition("#")[0].strip()
                if not key:
                    continue
                if problem := api_key_problem(key):
                    raise ValueError(f"api_keys_file: {self.api_keys_file}, line {number}: the key {problem}")
                keys.append(key)
        if not keys and not self.auth_disabled:
            raise ValueError(
                "api_keys_file: no API keys configured (--api-keys-file, LLM_SERVICE_API_KEYS or --auth-disabled)"
            )
        return tuple(key.encode("ascii") for key in keys)


_API_KEY = re.compile(r"[!-\"$-+\--~]{1,256}")  # visible ASCII (0x21-0x7E) but '#' (0x23) and ',' (0x2C)


def api_key_problem(key: str) -> str | None:
    """None for a usable API key, else what is wrong with it (never the key itself)."""
    if _API_KEY.fullmatch(key):
        return None
    if len(key) > 256:
        return f"is {len(key)} characters long; the maximum is 256"
    return "holds a character that is not allowed; allowed: visible ASCII (0x21-0x7E) except '#' and ','"
