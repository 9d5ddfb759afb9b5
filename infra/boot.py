"""What every instance boots with, rendered from the fleet file.

- `instance_contract(fleet, region)`: the typed `contract.instance.InstanceContract` of one
  region's instances: the boot settings and the service container's environment.
- `render_user_data(contract)`: the boot script (AWS user data, GCP startup-script). One
  script family for both clouds: rendered settings and files, then the static body
  `templates/instance/boot.sh`. It pulls the image (logging in to its registry), syncs the
  weights from the object-store mirror when there is one, fetches the secrets, writes the
  container's environment, and starts thin systemd units that each run one script: the
  service container (stop timeout longer than the drain) and the cloud's agents (metrics and
  liveness, the scale-in drain on AWS).
- `render_shutdown_script(contract)`: GCP's shutdown-script (a drain within GCP's budget).

Every host path in the scripts sits under `$LLM_FLEET_ROOT` (unset on a cloud instance), and
every cloud endpoint honours the cloud SDKs' own override variables: the local region runs
these very scripts against local stand-ins (`devkit`).
"""

from __future__ import annotations

import base64
import gzip
import shlex
from importlib import resources

from contract import facts
from contract.facts import TIMING, Cloud, stop_timeout_s
from contract.instance import (
    BootContract,
    CacheContract,
    FeaturesContract,
    InstanceContract,
    LanguageContract,
    RateLimitContract,
    ServiceContract,
)
from infra.config import Fleet, Quantization, RegionSpec
from infra.naming import aws_group_name, instance_log_group

# AWS user data is at most 16 KB in raw form, before base64 (EC2 User Guide, "Run commands when
# you launch an EC2 instance with user data input"), so it goes gzip-compressed: cloud-init
# decompresses gzip user data itself (cloud-init docs, "User data formats": compressed content).
# A GCP metadata value is at most 256 KB (Compute Engine, "About VM metadata": limits).
USER_DATA_LIMIT_BYTES = {Cloud.AWS: 16 * 1024, Cloud.GCP: 256 * 1024}
_TEMPLATES = "templates/instance"
# Scripts installed on every instance (bin/), and the agents of each cloud.
_SCRIPTS = {
    Cloud.AWS: ("llm-fleet-service", "llm-fleet-stop", "aws-agent", "aws-lifecycle"),
    Cloud.GCP: ("llm-fleet-service", "llm-fleet-stop", "gcp-agent"),
}
# The container's environment beyond the service's own settings.
_CONTAINER_ENV = {"HF_HOME": facts.MODEL_CACHE_IN_CONTAINER, "PYTHONUNBUFFERED": "1"}


def engine_quantization(fleet: Fleet) -> str | None:
    """The vLLM `--quantization` value: None when the checkpoint carries its own config."""
    m = fleet.model
    pre_quantized = m.engine_checkpoint != m.id
    if m.quantization == Quantization.FP8 and not pre_quantized:
        return "fp8"  # vLLM quantizes fp8 dynamically at load
    return None


def instance_contract(fleet: Fleet, region: RegionSpec) -> InstanceContract:
    """The contract of one region's instances, everything taken from the fleet file."""
    cloud = region.cloud
    timing = TIMING[cloud]
    m, s = fleet.model, fleet.service
    mirror = m.mirror(cloud)
    boot = BootContract(
        cloud=cloud,
        region=region.region,
        stack=region.stack_name,
        project=fleet.project,
        image=s.image,
        registry_secret=s.registry_secret,
        api_keys_secret=s.api_keys_secret,
        hf_token_secret=s.hf_token_secret,
        weights_mirror=mirror,
        stop_timeout_s=stop_timeout_s(cloud),
        cold_start_s=fleet.cold_start_s(region),
        asg_name=aws_group_name(fleet, region) if cloud == Cloud.AWS else None,
        log_group=instance_log_group(fleet, region) if cloud == Cloud.AWS else None,
        log_driver="awslogs" if cloud == Cloud.AWS else "gcplogs",
        gcp_project=fleet.gcp.project if cloud == Cloud.GCP else None,
    )
    service = ServiceContract(
        model=facts.WEIGHTS_IN_CONTAINER if mirror else m.engine_checkpoint,
        served_model_name=m.served_name,
        quantization=engine_quantization(fleet),
        max_model_len=m.max_model_len,
        gpu_memory_utilization=m.gpu_memory_utilization,
        device="gpu",
        engine_stop_timeout_s=timing.drain.engine_stop_s,
        port=s.port,
        metrics_port=facts.METRICS_PORT,
        metrics_host=facts.METRICS_HOST,
        keepalive_s=facts.GATEWAY_KEEPALIVE_S,
        api_keys_file=facts.KEYS_FILE_IN_CONTAINER,
        max_tokens_cap=s.max_tokens_cap,
        drain_serve_s=timing.drain.serve_s,
        drain_finish_s=timing.drain.finish_s,
        gcp_drain_serve_s=facts.GCP.preemption_drain.serve_s,
        gcp_drain_finish_s=facts.GCP.preemption_drain.finish_s,
        watch_aws=cloud == Cloud.AWS,
        watch_gcp=cloud == Cloud.GCP,
        features=FeaturesContract(
            # cache_ttl_s: 0 turns the cache off
            cache=CacheContract(enabled=s.cache_ttl_s > 0, ttl_s=float(s.cache_ttl_s or CacheContract().ttl_s)),
            rate_limit=RateLimitContract(requests_per_minute=s.rate_limit_rpm, tokens_per_minute=s.rate_limit_tpm),
            routing=fleet.routing,  # the fleet file's section is the contract's type
            language=LanguageContract(instruction_enabled=s.language_instruction),
        ),
    )
    return InstanceContract(boot=boot, service=service)


def boot_settings(contract: InstanceContract) -> dict[str, str]:
    """The shell settings the boot script and the agents read (`settings.env`)."""
    b, svc = contract.boot, contract.service
    settings = {
        "CLOUD": b.cloud.value,
        "REGION": b.region,
        "STACK": b.stack,
        "PROJECT": b.project,
        "POOL": b.pool,
        "IMAGE": b.image,
        "REGISTRY_SECRET": b.registry_secret or "",
        "API_KEYS_SECRET": b.api_keys_secret,
        "HF_TOKEN_SECRET": b.hf_token_secret or "",
        "WEIGHTS_MIRROR": b.weights_mirror or "",
        "CONTAINER_NAME": b.container_name,
        "CONTAINER_UID": str(facts.CONTAINER_UID),
        "DEVICE": svc.device,
        "STOP_TIMEOUT_S": str(b.stop_timeout_s),
        "COLD_START_S": str(b.cold_start_s),
        "SERVICE_PORT": str(svc.port),
        "METRICS_PORT": str(svc.metrics_port),
        "HEALTH_LIVE_PATH": facts.HEALTH_LIVE_PATH,
        "IN_FLIGHT_GAUGE": facts.IN_FLIGHT_GAUGE,
        "METRICS_PERIOD_S": str(facts.METRICS_PERIOD_S),
        "KEYS_IN_CONTAINER": facts.KEYS_FILE_IN_CONTAINER,
        "WEIGHTS_IN_CONTAINER": facts.WEIGHTS_IN_CONTAINER,
        "MODEL_CACHE_IN_CONTAINER": facts.MODEL_CACHE_IN_CONTAINER,
        "DLAMI_NVME": facts.DLAMI_NVME_MOUNT,
        "LOG_DRIVER": b.log_driver,
    }
    if b.cloud == Cloud.AWS:
        settings |= {
            "ASG": b.asg_name or "",
            "LOG_GROUP": b.log_group or "",
            "AWS_METRICS_NAMESPACE": facts.AWS_METRICS_NAMESPACE,
            "AWS_IN_FLIGHT_METRIC": facts.AWS_IN_FLIGHT_METRIC,
            "AWS_GPU_METRIC": facts.AWS_GPU_UTILIZATION_METRIC,
            "AWS_METRIC_DIMENSION": facts.AWS_METRIC_DIMENSION,
            "AWS_LIFECYCLE_HOOK": facts.AWS_LIFECYCLE_HOOK,
            "LIVENESS_FAILURES": str(facts.LIVENESS_FAILURES),
        }
    else:
        settings |= {
            "GCP_PROJECT": b.gcp_project or "",
            "GCP_IN_FLIGHT_METRIC_TYPE": facts.GCP_IN_FLIGHT_METRIC_TYPE,
            "GCP_GPU_METRIC_TYPE": facts.GCP_GPU_METRIC_TYPE,
        }
    return settings


def container_env(contract: InstanceContract) -> dict[str, str]:
    """The service container's environment file: the contract's service settings, plus the
    runtime's own variables."""
    return contract.service.env() | _CONTAINER_ENV


def _template(name: str) -> str:
    return resources.files("infra").joinpath(f"{_TEMPLATES}/{name}").read_text(encoding="utf-8")


def _file(path: str, content: str, marker: str) -> str:
    """A quoted here-document writing `content` verbatim to `path` (a shell expression)."""
    if f"\n{marker}\n" in f"\n{content}":
        raise ValueError(f"{path}: the content contains its here-document marker {marker}")
    return f"cat >{path} <<'{marker}'\n{content.rstrip(chr(10))}\n{marker}\n"


def render_user_data(contract: InstanceContract) -> str:
    """The complete boot script of one region's instances (pure in its input)."""
    b = contract.boot
    settings = "\n".join(f"{key}={shlex.quote(value)}" for key, value in boot_settings(contract).items())
    env = "\n".join(f"{key}={value}" for key, value in container_env(contract).items())
    if any("\n" in value for value in container_env(contract).values()):
        raise ValueError("service: an environment value contains a newline")
    parts = [
        "#!/bin/bash\n"
        f"# llm-fleet boot script: {b.stack}, pool {b.pool}. Rendered by infra/boot.py from the fleet file.\n"
        "set -euo pipefail\n"
        'ROOT="${LLM_FLEET_ROOT:-}"  # empty on a cloud instance; a directory in the local region\n'
        f'HOME_DIR="$ROOT{facts.INSTANCE_HOME}"\n'
        'mkdir -p "$HOME_DIR/bin"\n',
        _file('"$HOME_DIR/settings.env"', settings, "LLM_FLEET_SETTINGS"),
        _file('"$HOME_DIR/service.env"', env, "LLM_FLEET_ENV"),
        _file('"$HOME_DIR/lib.sh"', _template("lib.sh"), "LLM_FLEET_LIB"),
    ]
    parts += [_file(f'"$HOME_DIR/bin/{name}"', _template(name), "LLM_FLEET_SCRIPT") for name in _SCRIPTS[b.cloud]]
    parts.append('chmod 0755 "$HOME_DIR"/bin/*\n')
    parts.append(_template("boot.sh"))
    script = "".join(parts)
    user_data_bytes(b.cloud, script)  # fails here, at synth, when it would not fit
    return script


def user_data_bytes(cloud: Cloud, script: str) -> bytes:
    """The user data as the cloud receives it: gzip on AWS (deterministic), plain on GCP."""
    raw = script.encode("utf-8")
    data = gzip.compress(raw, mtime=0) if cloud == Cloud.AWS else raw
    if len(data) > USER_DATA_LIMIT_BYTES[cloud]:
        raise ValueError(
            f"boot script: {len(data)} bytes, above the {USER_DATA_LIMIT_BYTES[cloud]}-byte user-data limit of {cloud}"
        )
    return data


def aws_user_data(script: str) -> str:
    """The launch template's `user_data`: base64 of the gzip-compressed script."""
    return base64.b64encode(user_data_bytes(Cloud.AWS, script)).decode("ascii")


def render_shutdown_script(contract: InstanceContract) -> str:
    """GCP's shutdown-script: stop (drain) the service within GCP's shutdown budget."""
    timing = TIMING[contract.boot.cloud]
    budget = timing.shutdown_budget_s - timing.margin_s
    return _template("shutdown.sh").replace('"$SHUTDOWN_BUDGET_S"', str(budget))


def render_boot_script(fleet: Fleet, region: RegionSpec) -> str:
    """The boot script of one region's instances, from the fleet file."""
    return render_user_data(instance_contract(fleet, region))
