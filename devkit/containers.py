"""The local container runtime: Debian's podman with runc, under the name `docker`.

The boot script calls `docker`; on this machine that is podman (the docker CLI here has no
engine). Podman needs two settings on these machines, kept in a containers.conf of the
project's (crun fails on this cgroup setup; the default ulimits cannot be raised in this
sandbox): `runtime = "runc"` and `default_ulimits = []`. The local registry is plain HTTP on
127.0.0.1, declared insecure in a registries.conf of the project's. Every podman call of
the devkit, and the `docker` shim on a local instance's PATH, use these two files.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devkit.proc import LocalError

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache"
RUNTIME_DIR = CACHE / "containers"

CONTAINERS_CONF = """\
# Written by devkit/containers.py: podman on a build or test machine of this project.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
"""


def podman_binary() -> str:
    binary = shutil.which("podman")
    if binary is None:
        raise LocalError("podman not found: install the Debian packages podman and runc (`make setup` does)")
    if shutil.which("runc") is None:
        raise LocalError("runc not found: install the Debian package runc (`make setup` does)")
    return binary


@dataclass(frozen=True)
class Runtime:
    """podman with the project's configuration; `env` is what every podman call needs."""

    binary: str
    containers_conf: Path
    registries_conf: Path
    shim_dir: Path
    auth_file: Path  # the devkit's own registry credentials (each instance has its own)

    @property
    def env(self) -> dict[str, str]:
        return {
            "CONTAINERS_CONF": str(self.containers_conf),
            "CONTAINERS_REGISTRIES_CONF": str(self.registries_conf),
            "REGISTRY_AUTH_FILE": str(self.auth_file),
        }

    def run(
        self, args: Sequence[str], *, timeout_s: float, check: bool = True, input_: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        try:
            proc = subprocess.run(
                [self.binary, "--runtime", "runc", *args],
                env={**os.environ, **self.env},
                capture_output=True,
                input=input_,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LocalError(f"podman {args[0]}: no result within {timeout_s:g} s") from exc
        if check and proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()[-3:]
            raise LocalError(f"podman {' '.join(args[:2])}: exit {proc.returncode}: {' | '.join(tail)}")
        return proc

    def image_exists(self, ref: str) -> bool:
        return self.run(["image", "exists", ref], timeout_s=60, check=False).returncode == 0

    def inspect(self, container: str, template: str) -> str | None:
        proc = self.run(["inspect", "--format", template, container], timeout_s=30, check=False)
        return proc.stdout.decode().strip() if proc.returncode == 0 else None

    def remove(self, container: str) -> None:
        self.run(["rm", "--force", "--time", "5", container], timeout_s=60, check=False)


def runtime(
    directory: Path = RUNTIME_DIR,
    *,
    insecure_registries: Sequence[str] = (),
    extra_env: Mapping[str, str] | None = None,
) -> Runtime:
    """The runtime with its configuration files and a `docker` shim written into `directory`
    (one per local region: each knows its own registry)."""
    binary = podman_binary()
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "containers.conf"
    conf.write_text(CONTAINERS_CONF, encoding="utf-8")
    registries = directory / "registries.conf"
    registries.write_text(
        "# Written by devkit/containers.py: the local registry speaks plain HTTP on loopback.\n"
        + "".join(f'[[registry]]\nlocation = "{location}"\ninsecure = true\n\n' for location in insecure_registries),
        encoding="utf-8",
    )
    shim_dir = directory / "bin"
    shim_dir.mkdir(exist_ok=True)
    shim = shim_dir / "docker"
    exports = {"CONTAINERS_CONF": conf, "CONTAINERS_REGISTRIES_CONF": registries, **(extra_env or {})}
    shim.write_text(
        "#!/bin/sh\n"
        "# Written by devkit/containers.py: `docker` on a local instance is podman with runc;\n"
        "# registry credentials stay on the instance (under its root), as docker's would.\n"
        + "".join(f"export {key}='{value}'\n" for key, value in exports.items())
        + 'export REGISTRY_AUTH_FILE="${LLM_FLEET_ROOT:-}/root/.config/containers/auth.json"\n'
        + f'exec {binary} --runtime runc "$@"\n',
        encoding="utf-8",
    )
    shim.chmod(0o755)
    return Runtime(binary, conf, registries, shim_dir, directory / "auth.json")
