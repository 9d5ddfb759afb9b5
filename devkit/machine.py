"""One local instance, booted the way a cloud instance boots: by running its user data.

A `LocalMachine` is a directory standing in for the instance's filesystem (the boot script's
`$LLM_FLEET_ROOT`), a cloud stand-in for its metadata service (and, on GCP, the APIs), and
an environment that points the cloud SDKs at the local stand-ins with their own override
variables. `boot()` runs the rendered boot script with `bash`; what it starts (the service
container through `docker`, the agents) runs under the `systemctl` stand-in, exactly as the
units it wrote say. Nothing of the service is started here directly.

Per-host facts: several local instances share one host without a GPU, so each gets its own
ports, container name and a CPU engine (`HostOverrides`); everything else is the fleet's
instance contract, unchanged (tests/instance/test_boot_path.py holds that list).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from contract.facts import HEALTH_LIVE_PATH, HEALTH_READY_PATH, METRICS_PATH, Cloud
from contract.instance import InstanceContract
from devkit.cloudmeta import CloudControl
from devkit.containers import REPO, Runtime
from devkit.proc import LocalError, http_status, wait_until
from infra.boot import render_shutdown_script, render_user_data

BOOT_TIMEOUT_S = 600.0
SERVICE_UNIT = "llm-fleet.service"
AGENT_UNITS = {
    Cloud.AWS: ("llm-fleet-agent.service", "llm-fleet-lifecycle.service"),
    Cloud.GCP: ("llm-fleet-agent.service",),
}
AWSCLI_VENV = REPO / ".venv-awscli"
# The local engine: a CPU, several engines on two cores. Not in any fleet file: host facts.
CPU_ENGINE_ENV = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}


@dataclass(frozen=True)
class HostOverrides:
    """What differs when several instances share one host without a GPU (and tests cannot wait
    a cloud's drain windows), and its container runtime has no cloud log drivers: every other
    value is the fleet's contract."""

    port: int
    metrics_port: int
    container_name: str
    drain_serve_s: float
    drain_finish_s: float
    gcp_drain_serve_s: float
    gcp_drain_finish_s: float
    engine_stop_timeout_s: float = 10.0
    probe_interval_s: float = 1.0
    probe_timeout_s: float = 20.0  # a shared machine: a slow probe is not a dead engine
    restart_backoff_s: float = 0.5
    engine_start_timeout_s: float = 900.0
    aws_poll_interval_s: float = 1.0
    log_level: str = "warning"

    def apply(self, contract: InstanceContract) -> InstanceContract:
        service = contract.service.model_dump() | {
            "port": self.port,
            "metrics_port": self.metrics_port,
            "device": "cpu",
            "engine_args": ("--enforce-eager",),  # no torch.compile: the tiny model starts in seconds
            "engine_env": CPU_ENGINE_ENV,
            "drain_serve_s": self.drain_serve_s,
            "drain_finish_s": self.drain_finish_s,
            "gcp_drain_serve_s": self.gcp_drain_serve_s,
            "gcp_drain_finish_s": self.gcp_drain_finish_s,
            "engine_stop_timeout_s": self.engine_stop_timeout_s,
            "probe_interval_s": self.probe_interval_s,
            "probe_timeout_s": self.probe_timeout_s,
            "restart_backoff_s": self.restart_backoff_s,
            "engine_start_timeout_s": self.engine_start_timeout_s,
            "aws_poll_interval_s": self.aws_poll_interval_s,
            "log_level": self.log_level,
        }
        # podman has no awslogs / gcplogs driver: rotated files (the boot log still ships on AWS).
        boot = contract.boot.model_dump() | {"container_name": self.container_name, "log_driver": "json-file"}
        return InstanceContract.model_validate({"boot": boot, "service": service})


def aws_cli_dir() -> Path:
    if not (AWSCLI_VENV / "bin" / "aws").exists():
        raise LocalError(f"the AWS CLI is missing ({AWSCLI_VENV}/bin/aws): run `make setup`")
    return AWSCLI_VENV / "bin"


@dataclass
class LocalMachine:
    name: str
    workdir: Path
    contract: InstanceContract
    rt: Runtime
    cloud: CloudControl
    aws_endpoint: str | None = None  # moto, for an AWS instance
    extra_env: Mapping[str, str] = field(default_factory=dict)
    boot_seconds: float | None = None
    _stopping: subprocess.Popen[bytes] | None = None

    @property
    def root(self) -> Path:
        return self.workdir / "root"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.contract.service.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.contract.service.metrics_port}{METRICS_PATH}"

    @property
    def user_data_path(self) -> Path:
        return self.workdir / "user-data.sh"

    @property
    def shutdown_script_path(self) -> Path:
        return self.workdir / "shutdown-script.sh"

    @property
    def boot_log(self) -> Path:
        return self.root / "var" / "log" / "llm-fleet" / "boot.log"

    def env(self) -> dict[str, str]:
        """The instance's environment: the stand-ins through the clouds' own override variables."""
        systemctl_dir = self.workdir / "bin"
        path = os.pathsep.join([str(systemctl_dir), str(self.rt.shim_dir), str(aws_cli_dir()), os.environ["PATH"]])
        env = {
            "PATH": path,
            "HOME": str(self.root / "root"),
            "LANG": "C.UTF-8",
            "LLM_FLEET_ROOT": str(self.root),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
        if self.contract.boot.cloud == Cloud.AWS:
            assert self.aws_endpoint is not None
            env |= {
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": self.cloud.url,
                "AWS_ENDPOINT_URL": self.aws_endpoint,
                "AWS_ACCESS_KEY_ID": "test",
                "AWS_SECRET_ACCESS_KEY": "test",  # moto's
            }
        else:
            api = self.cloud.url + "/"
            env |= {
                "GCE_METADATA_HOST": self.cloud.host,
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER": api,
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_MONITORING": api,
                "CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE": api,
            }
        return env | dict(self.extra_env)

    def _write_systemctl(self) -> None:
        directory = self.workdir / "bin"
        directory.mkdir(parents=True, exist_ok=True)
        shim = directory / "systemctl"
        shim.write_text(
            "#!/bin/sh\n# devkit: systemd's commands for the units under $LLM_FLEET_ROOT\n"
            f"PYTHONPATH='{REPO}' exec '{sys.executable}' -m devkit.systemctl \"$@\"\n",
            encoding="utf-8",
        )
        shim.chmod(0o755)

    # --- boot --------------------------------------------------------------------------------------
    def boot(self, user_data: str | None = None, timeout_s: float = BOOT_TIMEOUT_S) -> float:
        """Run the user data (default: rendered from the contract) as the cloud would; returns
        when the boot script has exited (the units it enabled keep running)."""
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "root").mkdir(exist_ok=True)
        self._write_systemctl()
        self.user_data_path.write_text(user_data or render_user_data(self.contract), encoding="utf-8")
        if self.contract.boot.cloud == Cloud.GCP:  # GCP runs it when the VM is deleted or stopped
            self.shutdown_script_path.write_text(render_shutdown_script(self.contract), encoding="utf-8")
        started = time.monotonic()
        with (self.workdir / "boot.out").open("wb") as out:
            try:
                proc = subprocess.run(
                    ["bash", str(self.user_data_path)],
                    env=self.env(),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout_s,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise LocalError(f"{self.name}: boot script still running after {timeout_s:g} s") from exc
        self.boot_seconds = time.monotonic() - started
        if proc.returncode != 0:
            raise LocalError(f"{self.name}: boot script exited {proc.returncode}: {self.log_tail(6)}")
        return self.boot_seconds

    def systemctl(self, *args: str, timeout_s: float = 300.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.workdir / "bin" / "systemctl"), *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def unit_state(self, unit: str = SERVICE_UNIT) -> dict[str, str]:
        lines = self.systemctl("show", unit).stdout.splitlines()
        return dict(line.split("=", 1) for line in lines if "=" in line)

    # --- state ---------------------------------------------------------------------------------------
    def running(self) -> bool:
        return self.unit_state().get("ActiveState") == "active"

    def ready(self) -> bool:
        return http_status(self.url + HEALTH_READY_PATH) == 200

    def live(self) -> bool:
        return http_status(self.url + HEALTH_LIVE_PATH) == 200

    def wait_ready(self, timeout_s: float) -> float:
        def check() -> bool:
            if not self.running():
                raise LocalError(f"{self.name}: the service unit is down: {self.log_tail(6)}")
            return self.ready()

        return wait_until(check, timeout_s, f"{self.name} {HEALTH_READY_PATH}", 0.2)

    def health(self) -> dict[str, object]:
        try:
            body: dict[str, object] = httpx.get(self.url + HEALTH_READY_PATH, timeout=2.0, trust_env=False).json()
        except (httpx.HTTPError, ValueError):
            return {"status": "unreachable", "ready": False}
        return body

    def metrics(self) -> str:
        response = httpx.get(self.metrics_url, timeout=5.0, trust_env=False)
        response.raise_for_status()
        return response.text

    def container_pid(self) -> int | None:
        pid = self.rt.inspect(self.contract.boot.container_name, "{{.State.Pid}}")
        return int(pid) if pid and pid.isdigit() and int(pid) > 0 else None

    def engine_pid(self) -> int | None:
        """The vLLM API server inside the container (the gateway's child)."""
        gateway = self.container_pid()
        if gateway is None:
            return None
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(gateway).children(recursive=True):
                if child.status() != psutil.STATUS_ZOMBIE and "vllm.entrypoints" in " ".join(child.cmdline()):
                    return int(child.pid)
        return None

    def kill_engine(self) -> int:
        """SIGKILL the engine's process group inside the container; its pid."""
        pid = self.engine_pid()
        if pid is None:
            raise LocalError(f"{self.name}: no engine process to kill")
        os.killpg(os.getpgid(pid), signal.SIGKILL)
        return pid

    # --- stopping ------------------------------------------------------------------------------------
    def terminate(self) -> None:
        """What the cloud does when it takes the instance away, in the background: GCP runs the
        shutdown script, AWS's scale-in has the lifecycle agent stop the unit. Either way the
        unit's ExecStop runs `docker stop`: SIGTERM, the drain."""
        argv = (
            ["bash", str(self.shutdown_script_path)]
            if self.contract.boot.cloud == Cloud.GCP
            else [str(self.workdir / "bin" / "systemctl"), "stop", SERVICE_UNIT]
        )
        with (self.workdir / "terminate.out").open("ab") as out:
            self._stopping = subprocess.Popen(argv, env=self.env(), stdout=out, stderr=subprocess.STDOUT)

    def wait_exit(self, timeout_s: float) -> int:
        """Until the service is down; the container's exit status (0: a clean drain)."""
        wait_until(lambda: not self.running(), timeout_s, f"{self.name} to stop", 0.2)
        if self._stopping is not None:
            self._stopping.wait(timeout_s)
            self._stopping = None
        status = self.unit_state().get("ExecMainStatus", "")
        return int(status) if status.lstrip("-").isdigit() else -1

    def shutdown(self) -> None:
        """Stop every unit (agents first) and remove the container; safe to call twice."""
        if not (self.workdir / "bin" / "systemctl").exists():
            return
        for unit in (*AGENT_UNITS[self.contract.boot.cloud], SERVICE_UNIT):
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.systemctl("stop", unit, timeout_s=60)
        self.rt.remove(self.contract.boot.container_name)

    def log_tail(self, lines: int = 20) -> str:
        parts = []
        for path in (self.boot_log, self.root / "var" / "log" / "units" / f"{SERVICE_UNIT}.log"):
            with contextlib.suppress(OSError):
                parts += path.read_text(errors="replace").splitlines()[-lines:]
        return " | ".join(parts) or "(no log)"
