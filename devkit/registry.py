"""A local container registry with credentials: the registry the boot script logs in to.

Debian's `docker-registry` (the CNCF distribution registry) on 127.0.0.1:<free port>, with
htpasswd (bcrypt) authentication, storing blobs under `.cache/registry` so a second run on the
same machine pushes only what changed. The built service image is pushed to it; instances
pull it with `docker login` + `docker pull`, the credentials coming from the cloud's secret
store as in production (`service.registry_secret`: "username:token").
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from devkit.containers import CACHE, Runtime
from devkit.proc import LocalError, free_port, http_status, stop_process, wait_until

STORAGE = CACHE / "registry"
USERNAME = "llm-fleet-ci"


def _htpasswd(username: str, password: str) -> str:
    import bcrypt

    return f"{username}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=10)).decode()}\n"


@dataclass
class LocalRegistry:
    workdir: Path
    username: str = USERNAME
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def credentials(self) -> str:
        """What the registry secret holds: "username:token"."""
        return f"{self.username}:{self.password}"

    def start(self) -> LocalRegistry:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise LocalError(
                "docker-registry not found: install the Debian package docker-registry (`make setup` does)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        STORAGE.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        htpasswd = self.workdir / "htpasswd"
        htpasswd.write_text(_htpasswd(self.username, self.password), encoding="utf-8")
        config = self.workdir / "registry.yml"
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {STORAGE}}}, delete: {{enabled: false}}}}\n"
            f"http: {{addr: {self.host}}}\n"
            f"auth: {{htpasswd: {{realm: llm-fleet-local, path: {htpasswd}}}}}\n",
            encoding="utf-8",
        )
        with (self.workdir / "registry.log").open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "serve", str(config)], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        # /v2/ answers 401 (credentials required) once the registry is up.
        wait_until(lambda: http_status(f"http://{self.host}/v2/") == 401, 30, "the local registry")
        return self

    def push(self, rt: Runtime, local_ref: str, name: str = "llm-fleet/service") -> str:
        """Push a local image; its reference in this registry (the tag is the local one's)."""
        tag = local_ref.rsplit(":", 1)[1]
        remote = f"{self.host}/{name}:{tag}"
        rt.run(
            ["login", "--username", self.username, "--password-stdin", self.host],
            timeout_s=60,
            input_=self.password.encode(),
        )
        rt.run(["tag", local_ref, remote], timeout_s=60)
        rt.run(["push", "--compression-format", "zstd", remote], timeout_s=1800)
        rt.run(["logout", self.host], timeout_s=60, check=False)
        return remote

    def stop(self) -> None:
        stop_process(self.process)
