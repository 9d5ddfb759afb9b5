"""A local region: instances booted from their rendered user data, behind HAProxy.

Each instance is a `devkit.machine.LocalMachine`: the boot script rendered for its cloud
(`infra.boot`) runs against local stand-ins (the metadata services and GCP APIs of
`devkit.cloudmeta`, moto for AWS, a local registry for the image) and starts the service
image (`service/Dockerfile`, built by `devkit.images`) and the agents through the units it
writes. Instance i1 boots the AWS user data of the fleet's canary AWS region, i2 the GCP
user data of its first GCP region (or a second AWS instance in an AWS-only fleet).

The fleet the instances run is the given fleet file with the tiny test model (from an
object-store mirror: moto S3 for AWS, the Cloud Storage stand-in for GCP), the local image
and registry, and a per-key rate limit far above the load (one API key drives all of it;
the limiter stays on). Per-host facts (ports, container names, a CPU engine, scaled drain
windows) are `HostOverrides`.

HAProxy plays the cloud load balancer. It health-checks ``GET /health/ready`` like the ALB
target group (10 s interval, 2 healthy, 3 unhealthy) with the interval scaled down
(10 s / 3 / 2 -> 1 s / 3 / 2), balances on least connections,
and retries only failures where the request was provably not processed:

- ``conn-failure`` / ``empty-response``: the connection failed or closed before any byte of
  a response (an instance that is exiting, a reused keep-alive connection it closed);
- ``503``: the gateway answers 503 only *before* forwarding (``draining``,
  ``engine_unavailable``), so nothing was generated.

A 502 (the engine died under an in-flight request) or a broken stream is never retried:
the client sees it, with a retryable status, and decides. ``option redispatch`` sends each
retry to another server. When no instance passes its check, HAProxy fails open to all of
them (unchecked backup servers), as an ALB does when every target is unhealthy.

Used by ``scripts.demo`` and the tests; processes bind 127.0.0.1 only and every wait is bounded.
"""

from __future__ import annotations

import contextlib
import csv
import io
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from contract.facts import AWS as AWS_TIMING
from contract.facts import CONTAINER_NAME, HEALTH_READY_PATH, PUBLIC_API_PATHS, Cloud, LbHealthCheck
from devkit.cloudmeta import CloudConfig, CloudControl, cloud_stand_in
from devkit.containers import REPO, Runtime, runtime
from devkit.images import ImageBuilder
from devkit.machine import HostOverrides, LocalMachine
from devkit.proc import LocalError, free_port, http_status, stop_process, wait_until
from devkit.registry import LocalRegistry
from infra.boot import instance_contract
from infra.config import Fleet, RegionSpec, parse_fleet

TINY_MODEL = REPO / ".cache" / "tiny-model"
SERVED = "tiny"
BACKEND = "llm"
FAIL_OPEN_SUFFIX = "-failopen"
WEIGHTS_BUCKET = "llm-fleet-local-weights"
WEIGHTS_PREFIX = "tiny"
REGISTRY_SECRET = "llm-fleet-registry"  # noqa: S105 - the secret's name
LOAD_TEST_RATE_LIMIT = {"rate_limit_rpm": 1_000_000, "rate_limit_tpm": 1_000_000_000}

__all__ = [
    "LOCAL_HEALTH_CHECK",
    "SERVED",
    "HAProxy",
    "Instance",
    "LocalCloud",
    "LocalError",
    "LocalRegion",
    "local_fleet",
]


# --- the load balancer's health check ----------------------------------------------------

# The ALB target group of every AWS region (contract.facts.AWS.ready_check), and the local
# region's: the interval scaled 10 s -> 1 s with the same thresholds. The check timeout stays
# at 2 s: on a shared 2-core machine a loaded gateway may take longer than 0.5 s to answer,
# and a flapping healthy instance is not what the local region should demonstrate.
ALB_HEALTH_CHECK = AWS_TIMING.ready_check
LOCAL_HEALTH_CHECK = LbHealthCheck(
    interval_s=ALB_HEALTH_CHECK.interval_s / 10,
    timeout_s=2.0,
    healthy_threshold=ALB_HEALTH_CHECK.healthy_threshold,
    unhealthy_threshold=ALB_HEALTH_CHECK.unhealthy_threshold,
    path=HEALTH_READY_PATH,
)


def local_fleet(fleet: Fleet, *, image: str) -> Fleet:
    """The fleet the local instances run: the tiny model from the object-store mirrors, the
    local image and its registry's credentials, limits above any local load."""
    data = fleet.model_dump(mode="json", by_alias=True)
    data["model"] = {
        "id": "local/tiny-qwen2",
        "served_name": SERVED,
        "quantization": "none",
        "max_model_len": 1024,
        "weights_mirror": {
            "aws": f"s3://{WEIGHTS_BUCKET}/{WEIGHTS_PREFIX}",
            "gcp": f"gs://{WEIGHTS_BUCKET}/{WEIGHTS_PREFIX}",
        },
    }
    data["service"] |= {"image": image, "registry_secret": REGISTRY_SECRET, "max_tokens_cap": 64} | LOAD_TEST_RATE_LIMIT
    return parse_fleet(data, "<local region>")


@dataclass(frozen=True)
class InstanceOptions:
    """How every local instance runs (scaled-down drain windows, fast probes)."""

    probe_interval_s: float = 1.0
    probe_timeout_s: float = 20.0  # the machine is shared: a slow probe is not a dead engine
    # Serve past HAProxy's detection time (interval x unhealthy threshold) before rejecting.
    drain_serve_s: float = LOCAL_HEALTH_CHECK.detect_down_s + 2.0
    drain_finish_s: float = 30.0
    gcp_drain_serve_s: float = LOCAL_HEALTH_CHECK.detect_down_s + 2.0
    gcp_drain_finish_s: float = 15.0
    restart_backoff_s: float = 0.5
    engine_start_timeout_s: float = 900.0  # two engines loading at once on a shared 2-core machine


# --- the local cloud: image, registry, secrets, weights ------------------------------------


@dataclass
class LocalCloud:
    """What every local instance boots against: the image in a registry with credentials, the
    fleet's secrets in each cloud's secret store, the weights in each cloud's object store."""

    workdir: Path
    moto_endpoint: str
    api_key: str = field(default_factory=lambda: "sk-local-" + secrets.token_hex(12))
    registry: LocalRegistry | None = None
    rt: Runtime | None = None
    image: str = ""
    build_seconds: float = 0.0

    def start(self) -> LocalCloud:
        self.registry = LocalRegistry(self.workdir / "registry").start()
        self.rt = runtime(self.workdir / "containers", insecure_registries=[self.registry.host])
        built = ImageBuilder(self.rt).build()
        self.build_seconds = built.seconds
        self.image = self.registry.push(self.rt, built.service)
        (self.workdir / "gcs" / WEIGHTS_BUCKET).mkdir(parents=True, exist_ok=True)
        shutil.copytree(TINY_MODEL, self.workdir / "gcs" / WEIGHTS_BUCKET / WEIGHTS_PREFIX, dirs_exist_ok=True)
        return self

    def stop(self) -> None:
        if self.registry is not None:
            self.registry.stop()

    def boto(self, service: str, region: str) -> Any:
        import boto3  # type: ignore[import-untyped]  # boto3 ships no type information

        return boto3.client(
            service,
            region_name=region,
            endpoint_url=self.moto_endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",  # noqa: S106 - moto's dummy credentials
        )

    def prepare_aws(self, fleet: Fleet, region: RegionSpec) -> None:
        """The operator's steps before instances boot in an AWS region (README "Deploying for
        real"): the API keys and the registry credentials in Secrets Manager, the weights in S3."""
        assert self.registry is not None
        sm = self.boto("secretsmanager", region.region)
        for name, value in (
            (fleet.service.api_keys_secret, f"# local region keys\n{self.api_key}\n"),
            (REGISTRY_SECRET, self.registry.credentials),
        ):
            try:
                sm.create_secret(Name=name, SecretString=value)
            except sm.exceptions.ResourceExistsException:
                sm.put_secret_value(SecretId=name, SecretString=value)
        s3 = self.boto("s3", region.region)
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            config = {} if region.region == "us-east-1" else {"LocationConstraint": region.region}
            s3.create_bucket(Bucket=WEIGHTS_BUCKET, **({"CreateBucketConfiguration": config} if config else {}))
        for path in sorted(TINY_MODEL.iterdir()):
            if path.is_file() and not path.name.startswith("."):
                s3.upload_file(str(path), WEIGHTS_BUCKET, f"{WEIGHTS_PREFIX}/{path.name}")

    def aws_instance_id(self, group: str, region: str, taken: set[str]) -> str:
        """An InService instance of the deployed group that no local instance stands for yet
        (more are launched when all are taken: the group scales out)."""
        autoscaling = self.boto("autoscaling", region)

        def free() -> str | None:
            groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
            if not groups:
                raise LocalError(f"{group}: no such Auto Scaling group in moto (deploy the region's stack first)")
            ids = [i["InstanceId"] for i in groups[0]["Instances"] if i["LifecycleState"] == "InService"]
            return next((i for i in ids if i not in taken), None)

        found = free()
        if found is None:
            groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
            wanted = len(groups[0]["Instances"]) + 1
            autoscaling.update_auto_scaling_group(
                AutoScalingGroupName=group, MaxSize=max(wanted, groups[0]["MaxSize"]), DesiredCapacity=wanted
            )
            found = free()
        if found is None:
            raise LocalError(f"{group}: moto launched no instance")
        return found

    def gcp_config(self, fleet: Fleet) -> CloudConfig:
        assert self.registry is not None
        return CloudConfig(
            gcp_project=fleet.gcp.project or "llm-fleet-local",
            gcp_instance_id=str(10**18 + secrets.randbelow(10**18)),
            secrets={
                fleet.service.api_keys_secret: f"# local region keys\n{self.api_key}\n",
                REGISTRY_SECRET: self.registry.credentials,
            },
            buckets={WEIGHTS_BUCKET: str(self.workdir / "gcs" / WEIGHTS_BUCKET)},
        )


# --- one instance -------------------------------------------------------------------------


@dataclass
class Instance:
    """One instance slot of the region: booted from user data, replaced by a fresh boot."""

    name: str
    workdir: Path
    cloud: LocalCloud
    fleet: Fleet
    region: RegionSpec
    options: InstanceOptions
    port: int = field(default_factory=free_port)
    metrics_port: int = field(default_factory=free_port)
    machine: LocalMachine | None = None
    stand_in: CloudControl | None = None
    identity: CloudConfig | None = None  # what the instance's cloud knows about it
    boots: int = 0
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    _taken: set[str] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def kind(self) -> Cloud:
        return self.region.cloud

    @property
    def m(self) -> LocalMachine:
        if self.machine is None:
            raise LocalError(f"{self.name}: not booted")
        return self.machine

    def overrides(self) -> HostOverrides:
        o = self.options
        return HostOverrides(
            port=self.port,
            metrics_port=self.metrics_port,
            container_name=f"{CONTAINER_NAME}-{self.name}-{self.workdir.parent.name}"[:60],
            drain_serve_s=o.drain_serve_s,
            drain_finish_s=o.drain_finish_s,
            gcp_drain_serve_s=o.gcp_drain_serve_s,
            gcp_drain_finish_s=o.gcp_drain_finish_s,
            probe_interval_s=o.probe_interval_s,
            probe_timeout_s=o.probe_timeout_s,
            restart_backoff_s=o.restart_backoff_s,
            engine_start_timeout_s=o.engine_start_timeout_s,
        )

    def boot(self) -> float:
        """A new machine (a fresh root and metadata service) boots from the region's user data;
        the seconds the boot script took."""
        self.shutdown()
        self.boots += 1
        workdir = self.workdir / f"{self.name}-boot{self.boots}"
        contract = self.overrides().apply(instance_contract(self.fleet, self.region))
        if self.kind == Cloud.AWS:
            assert contract.boot.asg_name is not None
            instance_id = self.cloud.aws_instance_id(contract.boot.asg_name, self.region.region, self._taken)
            self._taken.add(instance_id)
            config = CloudConfig(instance_id=instance_id, region=self.region.region)
        else:
            config = self.cloud.gcp_config(self.fleet)
        self.identity = config
        self.stand_in = self._stack.enter_context(cloud_stand_in(config))
        assert self.cloud.rt is not None
        self.machine = LocalMachine(
            self.name, workdir, contract, self.cloud.rt, self.stand_in, aws_endpoint=self.cloud.moto_endpoint
        )
        return self.machine.boot()

    # The operations the tests and the demo use.
    def running(self) -> bool:
        return self.machine is not None and self.machine.running()

    def ready(self) -> bool:
        return self.m.ready()

    def wait_ready(self, timeout_s: float | None = None) -> float:
        return self.m.wait_ready(timeout_s or self.options.engine_start_timeout_s)

    def health(self) -> dict[str, object]:
        return self.m.health()

    def metrics(self) -> str:
        return self.m.metrics()

    def engine_pid(self) -> int | None:
        return self.m.engine_pid()

    def kill_engine(self) -> int:
        return self.m.kill_engine()

    def terminate(self) -> None:
        self.m.terminate()

    def wait_exit(self, timeout_s: float) -> int:
        return self.m.wait_exit(timeout_s)

    def trigger(self, notice: str) -> None:
        """A cloud notice on this instance's metadata service (spot, rebalance, preempt, terminate)."""
        assert self.stand_in is not None
        self.stand_in.trigger(notice)

    def shutdown(self) -> None:
        if self.machine is not None:
            self.machine.shutdown()
        self._stack.close()
        self._stack = contextlib.ExitStack()

    def log_tail(self, lines: int = 20) -> str:
        return self.machine.log_tail(lines) if self.machine is not None else "(not booted)"


# --- HAProxy ------------------------------------------------------------------------------


def haproxy_config(
    *, port: int, stats_port: int, servers: Sequence[tuple[str, int]], check: LbHealthCheck = LOCAL_HEALTH_CHECK
) -> str:
    """An HAProxy configuration that load-balances like the cloud LB in front of a region."""
    inter_ms = round(check.interval_s * 1000)
    timeout_ms = round(check.timeout_s * 1000)
    server_lines = "\n".join(f"    server {name} 127.0.0.1:{server_port} check" for name, server_port in servers)
    # Fail open like an ALB whose targets are all unhealthy: it then routes to all of them.
    # The same instances, unchecked, as backups that take traffic only when no server is UP.
    server_lines += "\n" + "\n".join(
        f"    server {name}{FAIL_OPEN_SUFFIX} 127.0.0.1:{server_port} backup" for name, server_port in servers
    )
    return f"""\
global
    log stderr format short local0 notice
    maxconn 4096

defaults
    mode http
    log global
    option httplog
    option dontlognull
    timeout connect 2s
    timeout client 310s
    timeout server 310s
    timeout http-request 10s
    timeout check {timeout_ms}ms

frontend api
    bind 127.0.0.1:{port}
    # Only the public API and the health paths reach an instance (like the ALB listener rules).
    acl api path {" ".join(PUBLIC_API_PATHS)}
    acl health path_beg /health
    http-request deny deny_status 404 unless api || health
    default_backend {BACKEND}

backend {BACKEND}
    balance leastconn
    option httpchk
    http-check send meth GET uri {check.path}
    http-check expect status 200
    default-server inter {inter_ms} fastinter {inter_ms} downinter {inter_ms} fall {check.unhealthy_threshold} \
rise {check.healthy_threshold}
    # Retry only what provably was not processed; each retry goes to another server. A status
    # retry needs the whole request in HAProxy's buffer (without it, POSTs are never retried).
    option http-buffer-request
    retries 3
    retry-on conn-failure empty-response 503
    option redispatch 1
    option allbackups
{server_lines}

frontend stats
    bind 127.0.0.1:{stats_port}
    stats enable
    stats uri /stats
    stats refresh 5s
"""


@dataclass
class ServerStats:
    name: str
    status: str  # UP, DOWN, "UP 1/2", "DOWN 1/3", MAINT, no check
    retries: int
    redispatches: int
    responses_5xx: int
    sessions_total: int


@dataclass
class HAProxy:
    workdir: Path
    servers: Sequence[tuple[str, int]]
    check: LbHealthCheck = LOCAL_HEALTH_CHECK
    port: int = 0
    stats_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "haproxy.log"

    def start(self) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise LocalError("haproxy not found: install the Debian package haproxy")
        self.port, self.stats_port = free_port(), free_port()
        config = self.workdir / "haproxy.cfg"
        config.write_text(
            haproxy_config(port=self.port, stats_port=self.stats_port, servers=self.servers, check=self.check)
        )
        checked = subprocess.run([binary, "-c", "-q", "-f", str(config)], capture_output=True, text=True, check=False)
        if checked.returncode != 0:
            raise LocalError(f"haproxy config invalid: {checked.stderr.strip() or checked.stdout.strip()}")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "-db", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until(lambda: http_status(f"http://127.0.0.1:{self.stats_port}/stats") == 200, 20, "haproxy stats")

    def stats(self) -> dict[str, ServerStats]:
        """Per-server state and counters from HAProxy's CSV stats (the backend row is BACKEND)."""
        response = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=10.0, trust_env=False)
        response.raise_for_status()
        rows = csv.DictReader(io.StringIO(response.text.lstrip("# ")))
        result: dict[str, ServerStats] = {}
        for row in rows:
            if row["pxname"] != BACKEND:
                continue
            result[row["svname"]] = ServerStats(
                name=row["svname"],
                status=row["status"],
                retries=int(row["wretr"] or 0),
                redispatches=int(row["wredis"] or 0),
                responses_5xx=int(row["hrsp_5xx"] or 0),
                sessions_total=int(row["stot"] or 0),
            )
        return result

    def in_rotation(self, name: str) -> bool | None:
        """UP, or "UP 1/3" (failing checks but not yet taken out); not DOWN, "DOWN 1/2" or MAINT.
        None when the stats page did not answer (a starved machine), so pollers just poll again."""
        try:
            return self.stats()[name].status.startswith("UP")
        except httpx.HTTPError:
            return None

    def stop(self) -> None:
        stop_process(self.process)


# --- the region ---------------------------------------------------------------------------


@dataclass
class LocalRegion:
    """Booted instances behind one HAProxy. `launch()` boots and starts HAProxy; `wait_up()`."""

    workdir: Path
    fleet: Fleet
    moto_endpoint: str
    size: int = 2
    options: InstanceOptions = field(default_factory=InstanceOptions)
    cloud: LocalCloud | None = None
    instances: list[Instance] = field(default_factory=list)
    haproxy: HAProxy | None = None
    local: Fleet | None = None

    @property
    def api_key(self) -> str:
        assert self.cloud is not None
        return self.cloud.api_key

    @property
    def url(self) -> str:
        assert self.haproxy is not None
        return self.haproxy.url

    @property
    def lb(self) -> HAProxy:
        assert self.haproxy is not None
        return self.haproxy

    def regions(self) -> list[RegionSpec]:
        """i1: the canary AWS region; i2: the first GCP region (or another AWS instance)."""
        aws = [r for r in [self.fleet.canary, *self.fleet.regions] if r.cloud == Cloud.AWS]
        gcp = list(self.fleet.regions_of(Cloud.GCP))
        if not aws and not gcp:
            raise LocalError("the fleet has no region")
        first = aws[0] if aws else gcp[0]
        second = gcp[0] if gcp else first
        return [first, second, *([first] * max(self.size - 2, 0))][: self.size]

    def prepare(self) -> LocalCloud:
        """The image (built, pushed to the local registry) and the registry: no moto needed yet."""
        if self.cloud is None:
            if not (TINY_MODEL / "config.json").exists():
                raise LocalError(f"model missing at {TINY_MODEL}: run `make setup`")
            self.workdir.mkdir(parents=True, exist_ok=True)
            self.cloud = LocalCloud(self.workdir / "cloud", self.moto_endpoint)
            self.cloud.start()
        return self.cloud

    def launch(self) -> None:
        """Prepare the local cloud, boot every instance (their engines load in parallel), start
        HAProxy; returns when every boot script has finished."""
        self.cloud = self.prepare()
        self.cloud.moto_endpoint = self.moto_endpoint
        self.local = local_fleet(self.fleet, image=self.cloud.image)
        regions = self.regions()
        for region in {r.stack_name: r for r in regions if r.cloud == Cloud.AWS}.values():
            self.cloud.prepare_aws(self.local, region)
        for index, region in enumerate(regions):
            name = f"i{index + 1}"
            self.instances.append(
                Instance(
                    name,
                    self.workdir / name,
                    self.cloud,
                    self.local,
                    self.local.region(region.stack_name),
                    self.options,
                )
            )
        with ThreadPoolExecutor(max_workers=len(self.instances)) as pool:
            list(pool.map(lambda instance: instance.boot(), self.instances))
        self.haproxy = HAProxy(self.workdir, [(i.name, i.port) for i in self.instances])
        self.haproxy.start()

    def start(self) -> float:
        started = time.monotonic()
        self.launch()
        self.wait_up(self.options.engine_start_timeout_s)
        return time.monotonic() - started

    def wait_up(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for instance in self.instances:
            instance.wait_ready(max(deadline - time.monotonic(), 1.0))
        self.wait_in_rotation()

    def wait_in_rotation(self, timeout_s: float = 30.0) -> None:
        """Until HAProxy sees every instance UP (rise x interval after it went ready)."""
        names = [instance.name for instance in self.instances]
        wait_until(
            lambda: all(self.lb.in_rotation(name) for name in names), timeout_s, "every instance UP in haproxy", 0.2
        )

    def instance(self, name: str) -> Instance:
        for instance in self.instances:
            if instance.name == name:
                return instance
        raise KeyError(name)

    def stop(self) -> None:
        """Stop HAProxy, every instance (units, containers, stand-ins) and the registry; safe twice."""
        if self.haproxy is not None:
            self.haproxy.stop()
        for instance in self.instances:
            instance.shutdown()
        if self.cloud is not None:
            self.cloud.stop()


@contextlib.contextmanager
def local_region(workdir: Path, fleet: Fleet, moto_endpoint: str, size: int = 2) -> Iterator[LocalRegion]:
    region = LocalRegion(workdir, fleet, moto_endpoint, size)
    try:
        region.start()
        yield region
    finally:
        region.stop()
