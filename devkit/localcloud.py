"""A local cloud for offline deploys: terraform against a loopback moto_server.

Shared by the infra tests (tests/infra, through `tests.infra.tfharness`), the local region
and `make demo`.

- `provider_mirror()` finds the local filesystem mirror of hashicorp/aws.
- `TerraformRunner` runs terraform with its own CLI config (mirror only for hashicorp/aws),
  a shared plugin cache and a timeout on every call.
- `MotoServer` starts moto_server (with `devkit.motoext`) on a free loopback port.
- `deploy_to_moto(runner, stack_dirs, endpoint)` copies synthesized stacks, writes the
  provider-endpoint override file into each copy, applies them in order and returns outputs.
- `deploy_fleet(fleet, stacks_dir, workdir)`: all of it for a whole fleet (bootstrap, every
  AWS region, a stand-in for each GCP region, global), destroyed when the context exits.
  `make demo` and the test tiers' shared deployment both go through it.
- `seed_gpu_ami(endpoint, stack_dirs)`: a stand-in for the public GPU AMI parameter, which moto
  lacks (and refuses to create under /aws/), for the stacks that look it up.
- `aws_only(fleet)`: the fleet without its GCP regions, whose bootstrap stack has no Google
  provider (the one a fleet with GCP regions deploys offline).

Nothing here runs during synth; it only drives the terraform CLI and moto on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devkit.proc import free_port, stop_process
from infra.catalog import Cloud
from infra.config import Fleet, parse_fleet
from infra.naming import BOOTSTRAP_STACK, GLOBAL_STACK, local_state_file

AWS_PROVIDER = "registry.terraform.io/hashicorp/aws"
AWS_PROVIDER_VERSION = "5.100.0"
DEFAULT_TIMEOUT_S = 600
# Every AWS service the stacks touch; each gets the moto endpoint in the override file.
AWS_SERVICES = (
    "acm",
    "autoscaling",
    "cloudwatch",
    "cloudwatchlogs",
    "ec2",
    "elbv2",
    "globalaccelerator",
    "iam",
    "kms",
    "route53",
    "s3",
    "secretsmanager",
    "ssm",
    "sts",
)
OVERRIDE_FILE = "zz_endpoints_override.tf.json"


class HarnessError(RuntimeError):
    """A terraform/moto step failed; the message carries the command and its output tail."""


def provider_mirror() -> Path:
    """The directory holding registry.terraform.io/hashicorp/aws/<version>/..., or fail clearly."""
    candidates: list[Path] = []
    if os.environ.get("TF_PROVIDER_MIRROR"):
        candidates.append(Path(os.environ["TF_PROVIDER_MIRROR"]))
    candidates += [
        Path("/opt/tf-plugins"),
        Path.home() / ".terraform.d" / "plugins",
        Path.home() / ".local" / "share" / "terraform" / "plugins",
        Path("/usr/local/share/terraform/plugins"),
        Path("/usr/share/terraform/plugins"),
    ]
    for base in candidates:
        if (base / AWS_PROVIDER / AWS_PROVIDER_VERSION).is_dir():
            return base
    searched = ", ".join(str(c) for c in candidates)
    raise HarnessError(
        f"no local mirror of {AWS_PROVIDER} {AWS_PROVIDER_VERSION} found (searched: {searched}); "
        "set TF_PROVIDER_MIRROR to the directory that contains registry.terraform.io/"
    )


def write_cli_config(directory: Path, mirror: Path) -> Path:
    """A terraform CLI config that installs hashicorp/aws only from the local mirror."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "terraformrc"
    path.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["{AWS_PROVIDER}"]\n  }}\n'
        f'  direct {{\n    exclude = ["{AWS_PROVIDER}"]\n  }}\n'
        "}\n",
        encoding="utf-8",
    )
    return path


@dataclass
class TerraformRunner:
    """Runs terraform through the harness's CLI config with bounded time."""

    cli_config: Path
    plugin_cache: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    binary: str = "terraform"
    log_dir: Path | None = None  # when set, every command's output and duration is kept here

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "TF_CLI_CONFIG_FILE": str(self.cli_config),
                "TF_IN_AUTOMATION": "1",
                "TF_INPUT": "0",
                "TF_PLUGIN_CACHE_DIR": str(self.plugin_cache),
                "CHECKPOINT_DISABLE": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def run(
        self, cwd: Path, *args: str, timeout_s: float = DEFAULT_TIMEOUT_S, ok_codes: Iterable[int] = (0,)
    ) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, *args]
        try:
            proc = subprocess.run(
                cmd, cwd=cwd, env=self.env(), capture_output=True, text=True, timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise HarnessError(f"{' '.join(cmd)} in {cwd}: timed out after {timeout_s:.0f}s") from exc
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = self.log_dir / f"{cwd.parent.name}.{cwd.name}.{args[0]}.log"
            with log.open("a", encoding="utf-8") as fh:
                fh.write(f"$ {' '.join(cmd)}  # exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}\n")
        if proc.returncode not in tuple(ok_codes):
            tail = (proc.stdout[-3000:] + "\n" + proc.stderr[-5000:]).strip()
            raise HarnessError(f"{' '.join(cmd)} in {cwd}: exit {proc.returncode}\n{tail}")
        return proc

    def init(self, cwd: Path) -> None:
        self.run(cwd, "init", "-no-color", "-input=false")

    def validate(self, cwd: Path) -> dict[str, Any]:
        proc = self.run(cwd, "validate", "-no-color", "-json", ok_codes=(0, 1))
        result: dict[str, Any] = json.loads(proc.stdout)
        return result

    def apply(self, cwd: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.run(cwd, "apply", "-no-color", "-auto-approve", "-parallelism=20", timeout_s=timeout_s)

    def plan_exit_code(self, cwd: Path) -> tuple[int, str]:
        """`terraform plan -detailed-exitcode`: 0 no changes, 2 changes (1 raises)."""
        proc = self.run(cwd, "plan", "-no-color", "-detailed-exitcode", "-parallelism=20", ok_codes=(0, 2))
        return proc.returncode, proc.stdout

    def plan_changes(self, cwd: Path) -> list[dict[str, Any]]:
        """The resource changes a fresh plan proposes (no-ops and reads left out)."""
        self.run(cwd, "plan", "-no-color", "-out=recheck.tfplan", "-parallelism=20")
        shown = json.loads(self.run(cwd, "show", "-json", "recheck.tfplan").stdout)
        return [rc for rc in shown.get("resource_changes", []) if rc["change"]["actions"] not in (["no-op"], ["read"])]

    def destroy(self, cwd: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.run(cwd, "destroy", "-no-color", "-auto-approve", "-parallelism=20", timeout_s=timeout_s)

    def outputs(self, cwd: Path) -> dict[str, Any]:
        proc = self.run(cwd, "output", "-json")
        raw: dict[str, Any] = json.loads(proc.stdout)
        return {k: v["value"] for k, v in raw.items()}


def changed_attributes(change: dict[str, Any]) -> set[str]:
    """Top-level attributes an update changes (including ones unknown until apply)."""
    before = change.get("before") or {}
    after = change.get("after") or {}
    unknown = change.get("after_unknown") or {}
    keys = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    return keys | {k for k, v in unknown.items() if v is True}


def make_runner(tmp: Path) -> TerraformRunner:
    mirror = provider_mirror()
    cache = tmp / "plugin-cache"
    cache.mkdir(parents=True, exist_ok=True)
    return TerraformRunner(cli_config=write_cli_config(tmp, mirror), plugin_cache=cache, log_dir=tmp / "logs")


# ---------------------------------------------------------------------------------------
# moto


class MotoServer:
    """moto_server (with the API moto lacks: `devkit.motoext`) on 127.0.0.1:<free port>; use as a
    context manager."""

    def __init__(self, *, log: Path, env: Mapping[str, str] | None = None) -> None:
        self.log = log
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._env = dict(env or {})
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MotoServer:
        env = {**os.environ, **self._env}
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "devkit.motoext", "-H", "127.0.0.1", "-p", str(self.port)],
                cwd=Path(__file__).resolve().parent.parent,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise HarnessError(f"moto_server exited with {self._proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise HarnessError("moto_server did not listen within 60 s")

    def __exit__(self, *exc: object) -> None:
        stop_process(self._proc)


def endpoint_override(endpoint: str, services: Sequence[str] = AWS_SERVICES) -> dict[str, Any]:
    """The `*_override.tf.json` content that points the aws provider at moto."""
    return {
        "provider": {
            "aws": [
                {
                    "access_key": "test",
                    "secret_key": "test",
                    "skip_credentials_validation": True,
                    "skip_requesting_account_id": True,
                    "skip_metadata_api_check": True,
                    "skip_region_validation": True,
                    "s3_use_path_style": True,
                    "endpoints": [dict.fromkeys(services, endpoint)],
                }
            ]
        }
    }


def uses_aws_provider(stack_dir: Path) -> bool:
    """Whether the stack configures the aws provider (an override needs a block to merge into)."""
    for path in stack_dir.glob("*.tf.json"):
        if path.name.endswith("_override.tf.json"):
            continue
        if "aws" in json.loads(path.read_text(encoding="utf-8")).get("provider", {}):
            return True
    return False


def copy_stacks(stacks_dir: Path, names: Sequence[str], dest: Path) -> dict[str, Path]:
    """Copy synthesized stack directories (not their .terraform) into dest/<name>."""
    out: dict[str, Path] = {}
    for name in names:
        target = dest / name
        shutil.copytree(stacks_dir / name, target, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
        out[name] = target
    return out


def deploy_to_moto(
    runner: TerraformRunner, stack_dirs: Mapping[str, Path], endpoint: str, *, last: Sequence[str] = (GLOBAL_STACK,)
) -> dict[str, dict[str, Any]]:
    """Write the endpoint override into each (copied) stack, init and apply; return outputs.

    Stacks not named in `last` are independent of each other and are applied concurrently
    (each is its own terraform process and state); `last` (the global stack, which reads the
    others' state) follows in order. The caller destroys with `destroy_stacks`.
    """
    override = json.dumps(endpoint_override(endpoint), indent=2)

    # init one at a time: terraform's plugin cache is not safe for concurrent installs
    for cwd in stack_dirs.values():
        if uses_aws_provider(cwd):
            (cwd / OVERRIDE_FILE).write_text(override, encoding="utf-8")
        runner.init(cwd)

    def apply(name: str) -> tuple[str, dict[str, Any]]:
        runner.apply(stack_dirs[name])
        return name, runner.outputs(stack_dirs[name])

    first = [n for n in stack_dirs if n not in last]
    outputs: dict[str, dict[str, Any]] = {}
    with ThreadPoolExecutor(max_workers=max(len(first), 1)) as pool:
        for name, out in pool.map(apply, first):
            outputs[name] = out
    for name in (n for n in last if n in stack_dirs):
        outputs[name] = apply(name)[1]
    return outputs


def destroy_stacks(
    runner: TerraformRunner, stack_dirs: Mapping[str, Path], *, first: Sequence[str] = (GLOBAL_STACK,)
) -> list[str]:
    """Destroy `first` (the stacks that read the others), then the rest concurrently.

    Returns the errors (empty when all went cleanly).
    """

    def destroy(name: str) -> str | None:
        try:
            runner.destroy(stack_dirs[name])
        except HarnessError as exc:
            return f"{name}: {exc}"
        return None

    errors = [e for e in (destroy(n) for n in first if n in stack_dirs) if e]
    rest = [n for n in stack_dirs if n not in first]
    with ThreadPoolExecutor(max_workers=max(len(rest), 1)) as pool:
        errors += [e for e in pool.map(destroy, rest) if e]
    return errors


# ---------------------------------------------------------------------------------------
# a whole fleet

GCP_STAND_IN_IP = "203.0.113.10"
MOTO_ENV = {
    "MOTO_ACM_VALIDATION_WAIT": "0",  # certificates are ISSUED once their records exist
    "MOTO_IAM_LOAD_MANAGED_POLICIES": "true",  # AmazonSSMManagedInstanceCore
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
}


def gcp_stand_in(path: Path, stack: str, region: str, domain: str) -> None:
    """A provider-less stack that publishes the outputs the GCP regional stack publishes.

    There is no offline Google provider; the global stack only reads these outputs.
    """
    path.mkdir(parents=True)
    (path / "main.tf.json").write_text(
        json.dumps(
            {
                "terraform": {"backend": {"local": {"path": local_state_file(stack)}}},
                "output": {
                    "lb_ip_address": {"value": GCP_STAND_IN_IP},
                    "dns_authorization_record_name": {"value": f"_acme-challenge_abc.{region}.{domain}."},
                    "dns_authorization_record_type": {"value": "CNAME"},
                    "dns_authorization_record_data": {"value": "0123-abcd.4.authorize.certificatemanager.goog."},
                },
            }
        ),
        encoding="utf-8",
    )


def aws_only(fleet: Fleet) -> Fleet:
    """The fleet without its GCP regions (same project, state bucket, repository, domain).

    Its bootstrap stack has no Google provider. There is no offline mirror of
    hashicorp/google, so terraform can only init, validate and apply the AWS-only bootstrap
    (the full one also holds the GCP workload identity pool).
    """
    data = fleet.model_dump(mode="json", by_alias=True)
    data["regions"] = [r for r in data["regions"] if r["cloud"] != Cloud.GCP.value]
    return parse_fleet(data, "<aws-only projection>")


@dataclass
class FleetDeployment:
    endpoint: str
    dirs: dict[str, Path]
    outputs: dict[str, dict[str, Any]]
    zone_id: str
    destroyed: bool = False  # set by a caller that destroyed the stacks itself


@contextmanager
def deploy_fleet(
    fleet: Fleet,
    stacks_dir: Path,
    workdir: Path,
    *,
    replace: Mapping[str, Path] | None = None,
    runner: TerraformRunner | None = None,
) -> Iterator[FleetDeployment]:
    """Apply bootstrap, every AWS region and global (synthesized with the local backend into
    `stacks_dir`) to one moto_server; each GCP region is a stand-in publishing its outputs.
    `replace` takes a stack's directory from elsewhere (a fleet with GCP regions must deploy
    the `aws_only` projection's bootstrap). Destroys everything (unless the caller did and set
    `destroyed`) and stops moto when the context exits; a failed destroy never hides the
    error that ended the deploy."""
    import boto3  # type: ignore[import-untyped]  # boto3 ships no type information

    replace = replace or {}
    for name, source in replace.items():
        if source.name != name:
            raise HarnessError(f"replace: {name}: expected a directory named {name}, got {source}")
    if fleet.regions_of(Cloud.GCP) and BOOTSTRAP_STACK not in replace and _uses_google(stacks_dir / BOOTSTRAP_STACK):
        raise HarnessError(
            "bootstrap: uses the Google provider, which cannot be installed offline; "
            "deploy the aws_only(fleet) bootstrap (replace={'bootstrap': ...})"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    runner = runner or make_runner(workdir / "terraform")
    with MotoServer(log=workdir / "moto.log", env=MOTO_ENV) as moto:
        route53 = boto3.client(
            "route53",
            region_name="us-east-1",
            endpoint_url=moto.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",  # noqa: S106 - moto's dummy credentials
        )
        # The hosted zone pre-exists in every real account (the stacks look it up by name).
        zone = route53.create_hosted_zone(Name=fleet.global_.hosted_zone, CallerReference="llm-fleet-local")
        zone_id = zone["HostedZone"]["Id"].split("/")[-1]
        gcp = {r.stack_name: r for r in fleet.regions if r.cloud == Cloud.GCP}
        copies: dict[str, Path] = {}
        for name in (n for n in fleet.stack_names() if n not in gcp):
            source = replace.get(name, stacks_dir / name)
            copies |= copy_stacks(source.parent, [name], workdir / "stacks")
        for name, region in gcp.items():
            gcp_stand_in(workdir / "stacks" / name, name, region.region, fleet.global_.domain)
            copies[name] = workdir / "stacks" / name
        ordered = {name: copies[name] for name in fleet.stack_names() if name in copies}
        seed_gpu_ami(moto.endpoint, ordered)
        try:
            outputs = deploy_to_moto(runner, ordered, moto.endpoint)
        except BaseException:
            destroy_stacks(runner, ordered)  # best effort; the deploy's own error is the one raised
            raise
        deployment = FleetDeployment(moto.endpoint, ordered, outputs, zone_id)
        failed = False
        try:
            yield deployment
        except BaseException:
            failed = True
            raise
        finally:
            errors = [] if deployment.destroyed else destroy_stacks(runner, ordered)
            if errors and not failed:
                raise HarnessError(f"destroy failed: {errors[0].splitlines()[0]}")


# moto refuses parameter names under /aws/ ("reserved parameter name") and ships no Deep
# Learning AMI parameter, so the regional stacks' AMI lookup reads a stand-in parameter.
MOTO_GPU_AMI_PARAMETER = "/llm-fleet-local/gpu-ami-id"
GPU_AMI_OVERRIDE_FILE = "zz_moto_gpu_ami_override.tf.json"


def seed_gpu_ami(endpoint: str, stack_dirs: Mapping[str, Path]) -> dict[str, str]:
    """Give every stack that looks up a public /aws/service/ SSM parameter something to read.

    Per region: a registered stand-in image and `MOTO_GPU_AMI_PARAMETER` holding its id; per
    stack copy: an override file pointing those lookups at that parameter (the synthesized
    JSON itself is unchanged). Returns {stack: AMI id}.
    """
    import boto3  # typed Any: mypy reports boto3's missing stubs once, at deploy_fleet's import

    seeded: dict[str, str] = {}
    images: dict[str, str] = {}
    for name, path in stack_dirs.items():
        doc = json.loads((path / "cdk.tf.json").read_text(encoding="utf-8")) if (path / "cdk.tf.json").exists() else {}
        lookups = [
            lid
            for lid, block in doc.get("data", {}).get("aws_ssm_parameter", {}).items()
            if str(block.get("name", "")).startswith("/aws/service/")
        ]
        if not lookups:
            continue
        region = doc["provider"]["aws"][0]["region"]
        if region not in images:
            session = {"region_name": region, "endpoint_url": endpoint, "aws_access_key_id": "test"}
            ec2 = boto3.client("ec2", aws_secret_access_key="test", **session)  # noqa: S106 - moto's dummy credentials
            image = ec2.register_image(
                Name="llm-fleet-local-gpu-stand-in",
                Architecture="x86_64",
                RootDeviceName="/dev/sda1",
                VirtualizationType="hvm",
            )["ImageId"]
            ssm = boto3.client("ssm", aws_secret_access_key="test", **session)  # noqa: S106
            ssm.put_parameter(Name=MOTO_GPU_AMI_PARAMETER, Value=image, Type="String", DataType="aws:ec2:image")
            images[region] = image
        override = {"data": {"aws_ssm_parameter": {lid: {"name": MOTO_GPU_AMI_PARAMETER} for lid in lookups}}}
        (path / GPU_AMI_OVERRIDE_FILE).write_text(json.dumps(override, indent=2), encoding="utf-8")
        seeded[name] = images[region]
    return seeded


def _uses_google(stack_dir: Path) -> bool:
    try:
        doc = json.loads((stack_dir / "cdk.tf.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return "google" in doc.get("terraform", {}).get("required_providers", {})
