"""`systemctl` for a local instance, which has no systemd: runs the units the boot script wrote.

The boot script writes thin units (`ExecStart=` one script, optional `ExecStop=`, `Restart=`,
`RestartSec=`, `TimeoutStopSec=`) under `$LLM_FLEET_ROOT/etc/systemd/system` and runs
`systemctl daemon-reload` and `systemctl enable --now UNIT...`; the agents and the GCP
shutdown script run `systemctl stop UNIT`. This program gives those commands systemd's
meaning for such units, so the local region runs exactly the commands the units name:

- `enable --now` / `start`: one supervisor process per unit (detached) runs `ExecStart=`,
  and restarts it per `Restart=` (always, on-failure, no) after `RestartSec=`;
- `stop`: no more restarts; `ExecStop=` (bounded by `TimeoutStopSec=`), then SIGTERM to the
  main process, SIGKILL past `TimeoutStopSec=`; returns when the unit is down;
- `is-active`, `show -p MainPID,ExecMainStatus`, `daemon-reload`;
- a unit that is not under the root (docker.service, ...) is "not found" (exit 5), as it is
  for systemd.

Unit output goes to `$LLM_FLEET_ROOT/var/log/units/UNIT.log` (the journal's stand-in), state to
`$LLM_FLEET_ROOT/run/units/`. Units inherit this process's environment (on a cloud instance
they would get systemd's; the differences are the endpoint overrides the local region sets).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

UNIT_DIR = "etc/systemd/system"
STATE_DIR = "run/units"
LOG_DIR = "var/log/units"
DEFAULT_STOP_TIMEOUT_S = 90.0
EXIT_NOT_FOUND = 5


class UnitError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Unit:
    name: str
    exec_start: str
    exec_stop: str | None
    restart: str
    restart_s: float
    stop_timeout_s: float

    @classmethod
    def load(cls, root: Path, name: str) -> Unit:
        path = root / UNIT_DIR / name
        if not path.is_file():
            raise UnitError(f"Unit {name} not found.", EXIT_NOT_FOUND)
        values: dict[str, str] = {}
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if "=" in line and not line.startswith(("#", ";", "[")):
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
        if "ExecStart" not in values:
            raise UnitError(f"{name}: no ExecStart=")
        return cls(
            name=name,
            exec_start=values["ExecStart"],
            exec_stop=values.get("ExecStop"),
            restart=values.get("Restart", "no"),
            restart_s=float(values.get("RestartSec", "0.1")),
            stop_timeout_s=float(values.get("TimeoutStopSec", DEFAULT_STOP_TIMEOUT_S)),
        )


class Units:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / STATE_DIR
        self.logs = root / LOG_DIR

    def _file(self, name: str, kind: str) -> Path:
        return self.state / f"{name}.{kind}"

    def _pid(self, name: str, kind: str) -> int | None:
        try:
            pid = int(self._file(name, kind).read_text())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return pid

    def active(self, name: str) -> bool:
        return self._pid(name, "supervisor") is not None

    def start(self, name: str) -> None:
        Unit.load(self.root, name)  # refuse unknown units before anything starts
        if self.active(name):
            return
        self.state.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self._file(name, "stopping").unlink(missing_ok=True)
        with (self.logs / f"{name}.log").open("ab") as log:
            supervisor = subprocess.Popen(
                [sys.executable, "-m", "devkit.systemctl", "__supervise", name],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=os.environ.copy(),
            )
        self._file(name, "supervisor").write_text(str(supervisor.pid))
        deadline = time.monotonic() + 10
        while self._pid(name, "main") is None and supervisor.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)

    def stop(self, name: str) -> None:
        unit = Unit.load(self.root, name)
        supervisor = self._pid(name, "supervisor")
        if supervisor is None:
            return
        self._file(name, "stopping").write_text("1")
        deadline = time.monotonic() + unit.stop_timeout_s
        if unit.exec_stop:
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run(unit.exec_stop.split(), timeout=unit.stop_timeout_s, check=False)
            # ExecStop stopped the container; `docker run` (the main process) follows it out
            # within moments. Signal it only if it lingers, so its exit status is the container's.
            linger = time.monotonic() + min(10.0, max(deadline - time.monotonic(), 0.0))
            while self._pid(name, "main") is not None and time.monotonic() < linger:
                time.sleep(0.05)
        main = self._pid(name, "main")
        if main is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(main, signal.SIGTERM)
        while self._pid(name, "supervisor") is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        for kind in ("main", "supervisor"):
            pid = self._pid(name, kind)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL) if kind == "supervisor" else os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 10
        while self._pid(name, "supervisor") is not None and time.monotonic() < end:
            time.sleep(0.05)

    def show(self, name: str) -> dict[str, str]:
        Unit.load(self.root, name)
        main = self._pid(name, "main") if self.active(name) else None
        status = self._file(name, "status").read_text() if self._file(name, "status").exists() else ""
        return {
            "MainPID": str(main or 0),
            "ExecMainStatus": status,
            "ActiveState": "active" if self.active(name) else "inactive",
        }

    def supervise(self, name: str) -> int:
        """The supervisor's loop (runs detached, one per unit)."""
        unit = Unit.load(self.root, name)
        stopping = self._file(name, "stopping")
        while True:
            started = time.strftime("%Y-%m-%dT%H:%M:%S")
            print(f"[units] {started} starting {name}: {unit.exec_start}", flush=True)
            child = subprocess.Popen(unit.exec_start.split(), stdin=subprocess.DEVNULL)
            self._file(name, "main").write_text(str(child.pid))
            code = child.wait()
            self._file(name, "status").write_text(str(code))
            print(f"[units] {name} main process exited with {code}", flush=True)
            again = unit.restart == "always" or (unit.restart == "on-failure" and code != 0)
            if stopping.exists() or not again:
                self._file(name, "main").unlink(missing_ok=True)
                return 0
            time.sleep(unit.restart_s)
            if stopping.exists():
                return 0


def main(argv: list[str]) -> int:
    root = Path(os.environ.get("LLM_FLEET_ROOT") or "/")
    units = Units(root)
    args = [a for a in argv if not a.startswith("--") or a == "--now"]
    if not args:
        print("systemctl (devkit): a command is required", file=sys.stderr)
        return 1
    command, names = args[0], [a for a in args[1:] if a != "--now"]
    names = [n if "." in n else f"{n}.service" for n in names]
    try:
        if command == "__supervise":
            return units.supervise(names[0])
        if command == "daemon-reload":
            return 0
        if command in ("enable", "start", "restart"):
            if command == "enable" and "--now" not in argv:
                return 0
            for name in names:
                if command == "restart":
                    units.stop(name)
                units.start(name)
            return 0
        if command == "stop":
            for name in names:
                units.stop(name)
            return 0
        if command == "is-active":
            active = all(units.active(name) for name in names)
            print("active" if active else "inactive")
            return 0 if active else 3
        if command == "show":
            for name in names:
                for key, value in units.show(name).items():
                    print(f"{key}={value}")
            return 0
    except UnitError as exc:
        print(f"systemctl (devkit): {exc}", file=sys.stderr)
        return exc.code
    print(f"systemctl (devkit): unsupported command {command!r}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
