"""Terraform and moto helpers for the infra tests (and the demo / delivery tests).

- `provider_mirror()` finds the local filesystem mirror of hashicorp/aws.
- `TerraformRunner` runs terraform with its own CLI config (mirror only for hashicorp/aws),
  a shared plugin cache and a timeout on every call.
- `MotoServer` starts `moto_server` on a free loopback port.
- `deploy_to_moto(runner, stack_dirs, endpoint, workdir)` copies synthesized stacks, writes the
  provider-endpoint override file into each copy, applies them in order and returns outputs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    def destroy(self, cwd: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.run(cwd, "destroy", "-no-color", "-auto-approve", "-parallelism=20", timeout_s=timeout_s)

    def outputs(self, cwd: Path) -> dict[str, Any]:
        proc = self.run(cwd, "output", "-json")
        raw: dict[str, Any] = json.loads(proc.stdout)
        return {k: v["value"] for k, v in raw.items()}


def make_runner(tmp: Path) -> TerraformRunner:
    mirror = provider_mirror()
    cache = tmp / "plugin-cache"
    cache.mkdir(parents=True, exist_ok=True)
    return TerraformRunner(cli_config=write_cli_config(tmp, mirror), plugin_cache=cache, log_dir=tmp / "logs")


# ---------------------------------------------------------------------------------------
# moto


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MotoServer:
    """`moto_server` on 127.0.0.1:<free port>; use as a context manager."""

    def __init__(self, binary: Path, *, log: Path, env: Mapping[str, str] | None = None) -> None:
        self.binary = binary
        self.log = log
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._env = dict(env or {})
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> MotoServer:
        env = {**os.environ, **self._env}
        with self.log.open("wb") as log:
            self._proc = subprocess.Popen(
                [str(self.binary), "-H", "127.0.0.1", "-p", str(self.port)],
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
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)


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
    runner: TerraformRunner, stack_dirs: Mapping[str, Path], endpoint: str, *, last: Sequence[str] = ("global",)
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
    runner: TerraformRunner, stack_dirs: Mapping[str, Path], *, first: Sequence[str] = ("global",)
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
