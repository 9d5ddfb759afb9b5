"""Terraform (or OpenTofu) for the synthesized stacks: init, plan to a file, apply that plan.

- `find_binary()`: `--terraform-binary`, else `terraform`, else `tofu` on PATH; version >= 1.10
  (the S3 state backend's lockfile).
- `Terraform`: runs one command in a stack directory with a bounded time; the output goes to a
  log per stack (`<out>/logs/<stack>.log`); a failure is `TerraformError`, one line naming the
  stack, the command and terraform's own `Error:` line. Ctrl-C lets terraform stop cleanly
  (it receives the same SIGINT), so state is written and the lock released.
- `PlanSummary`: the counts and addresses of a saved plan (`terraform show -json`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetcli.errors import CliError, UsageError

MIN_VERSION = (1, 10)
PLAN_FILE = "llm-fleet.tfplan"
DEFAULT_TIMEOUT_S = 3600.0  # one command; an apply that waits for certificates and instances takes minutes
QUICK_TIMEOUT_S = 300.0  # show, output, version
STOP_GRACE_S = 120.0  # after Ctrl-C or the timeout: terraform's own clean stop (state written, lock released)
INSTALL_HINT = (
    "install Terraform >= 1.10 (https://developer.hashicorp.com/terraform/install) "
    "or OpenTofu >= 1.10 (https://opentofu.org/docs/intro/install/), or pass --terraform-binary PATH"
)


class TerraformError(CliError):
    def __init__(self, stack: str, command: str, detail: str, log: Path | None) -> None:
        where = f" (log: {log})" if log is not None else ""
        super().__init__(f"{stack}: {command} failed: {detail}{where}")
        self.stack = stack
        self.command = command
        self.detail = detail


@dataclass(frozen=True)
class Binary:
    path: str
    name: str  # terraform | tofu
    version: str


def find_binary(explicit: str | None = None) -> Binary:
    """The terraform or tofu to run, checked to be new enough; CliError with what to install."""
    if explicit:
        path = shutil.which(explicit)
        if path is None:
            raise UsageError(f"--terraform-binary {explicit}: not found or not executable; {INSTALL_HINT}")
    else:
        path = shutil.which("terraform") or shutil.which("tofu")
        if path is None:
            raise CliError(f"neither terraform nor tofu is on PATH: {INSTALL_HINT}")
    try:
        proc = subprocess.run(
            [path, "version", "-json"], capture_output=True, text=True, timeout=QUICK_TIMEOUT_S, check=False
        )
        version = str(json.loads(proc.stdout)["terraform_version"])
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, TypeError) as exc:
        raise CliError(f"{path}: not a working terraform/tofu ({type(exc).__name__}): {INSTALL_HINT}") from None
    name = "tofu" if Path(path).name.startswith("tofu") else "terraform"
    numbers = tuple(int(n) for n in re.findall(r"\d+", version)[:2])
    if numbers < MIN_VERSION:
        raise CliError(
            f"{path} is {name} {version}; the stacks need >= {'.'.join(map(str, MIN_VERSION))} "
            f"(S3 state locking with use_lockfile): {INSTALL_HINT}"
        )
    return Binary(path, name, version)


@dataclass
class PlanSummary:
    """What a saved plan would do."""

    create: list[str] = field(default_factory=list)
    update: list[str] = field(default_factory=list)
    replace: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    outputs_changed: bool = False
    exit_changes: bool = False  # `plan -detailed-exitcode` said 2

    @property
    def has_changes(self) -> bool:
        changes = self.create or self.update or self.replace or self.delete or self.outputs_changed
        return bool(changes or self.exit_changes)

    def counts(self) -> str:
        text = (
            f"{len(self.create)} to create, {len(self.update)} to update, "
            f"{len(self.replace)} to replace, {len(self.delete)} to destroy"
        )
        return text + (" (and output changes)" if self.outputs_changed else "")

    def short(self) -> str:
        return f"+{len(self.create)} ~{len(self.update)} ±{len(self.replace)} -{len(self.delete)}"

    def lines(self) -> list[tuple[str, str]]:
        """(symbol, address) per changed resource, terraform's symbols."""
        return (
            [("-", a) for a in self.delete]
            + [("-/+", a) for a in self.replace]
            + [("~", a) for a in self.update]
            + [("+", a) for a in self.create]
        )

    @classmethod
    def from_show_json(cls, doc: dict[str, Any]) -> PlanSummary:
        summary = cls()
        for change in doc.get("resource_changes", []):
            actions = change.get("change", {}).get("actions", [])
            address = str(change.get("address", "?"))
            if actions == ["create"]:
                summary.create.append(address)
            elif actions == ["update"]:
                summary.update.append(address)
            elif actions == ["delete"]:
                summary.delete.append(address)
            elif sorted(actions) == ["create", "delete"]:
                summary.replace.append(address)
        summary.outputs_changed = any(
            c.get("actions") not in (["no-op"], None) for c in doc.get("output_changes", {}).values()
        )
        return summary


def error_detail(text: str) -> str:
    """Terraform's first `Error:` line (with its first line of detail), else the last output line."""
    lines = [line.rstrip() for line in text.splitlines()]
    for i, line in enumerate(lines):
        stripped = line.lstrip("│ ").strip()
        if stripped.startswith("Error:"):
            summary = stripped
            detail = ""
            # the detail paragraph follows the "with ..."/"on ..." context lines and a blank line
            for follow in lines[i + 1 : i + 12]:
                f = follow.lstrip("│ ").strip()
                if f.startswith(("Error:", "Warning:", "╵")):
                    break
                if not f or f.startswith(("with ", "on ")) or re.match(r"^\d+:", f):  # context, quoted source
                    continue
                detail = f
                break
            one = f"{summary}: {detail}" if detail and detail not in summary else summary
            return one if len(one) <= 400 else one[:399] + "…"
    tail = [line.strip() for line in lines if line.strip()]
    return tail[-1][:400] if tail else "no output"


@dataclass
class Terraform:
    binary: Binary
    log_dir: Path
    timeout_s: float = DEFAULT_TIMEOUT_S

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1"})
        return env

    def log_path(self, stack: str) -> Path:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        return self.log_dir / f"{stack}.log"

    def run(self, stack: str, cwd: Path, *args: str, ok_codes: tuple[int, ...] = (0,)) -> int:
        """A long command (init, plan, apply): output to the stack's log; its exit status."""
        log = self.log_path(stack)
        command = f"{self.binary.name} {args[0]}"
        with log.open("a", encoding="utf-8") as fh:
            fh.write(f"\n$ {self.binary.name} {' '.join(args)}   # in {cwd}, {time.strftime('%H:%M:%S')}\n")
            fh.flush()
            start = fh.tell()
            proc = subprocess.Popen(
                [self.binary.path, *args], cwd=cwd, env=self.env(), stdout=fh, stderr=subprocess.STDOUT, text=True
            )
            code = self._wait(proc, stack, command, log)
        if code not in ok_codes:
            with log.open(encoding="utf-8", errors="replace") as fh:
                fh.seek(start)
                raise TerraformError(stack, command, error_detail(fh.read()), log)
        return code

    def _wait(self, proc: subprocess.Popen[str], stack: str, command: str, log: Path) -> int:
        try:
            return proc.wait(timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)  # terraform stops cleanly on SIGINT: state written, lock released
            self._stop(proc)
            raise TerraformError(
                stack, command, f"did not finish within {self.timeout_s / 60:g} min; stopped", log
            ) from None
        except KeyboardInterrupt:
            # terraform got the same SIGINT (same process group): let it finish its clean stop
            self._stop(proc)
            raise

    @staticmethod
    def _stop(proc: subprocess.Popen[str]) -> None:
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
            proc.wait(timeout=30)

    def read(self, stack: str, cwd: Path, *args: str) -> str:
        """A quick read-only command (show, output): its stdout."""
        command = f"{self.binary.name} {args[0]}"
        try:
            proc = subprocess.run(
                [self.binary.path, *args],
                cwd=cwd,
                env=self.env(),
                capture_output=True,
                text=True,
                timeout=QUICK_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TerraformError(stack, command, f"no answer within {QUICK_TIMEOUT_S:g} s", None) from None
        if proc.returncode != 0:
            with self.log_path(stack).open("a", encoding="utf-8") as fh:
                fh.write(f"\n$ {self.binary.name} {' '.join(args)}   # exit {proc.returncode}\n{proc.stderr}\n")
            raise TerraformError(stack, command, error_detail(proc.stderr or proc.stdout), self.log_path(stack))
        return proc.stdout

    # --- the steps ------------------------------------------------------------------------

    def init(self, stack: str, cwd: Path) -> None:
        self.run(stack, cwd, "init", "-input=false", "-no-color")

    def plan(self, stack: str, cwd: Path, *, destroy: bool = False, lock: bool = True) -> PlanSummary:
        """Plan into PLAN_FILE and summarize it (`show -json`)."""
        args = ["plan", "-input=false", "-no-color", "-detailed-exitcode", f"-out={PLAN_FILE}"]
        if destroy:
            args.append("-destroy")
        if not lock:
            args.append("-lock=false")
        code = self.run(stack, cwd, *args, ok_codes=(0, 2))
        if code == 0:
            return PlanSummary()
        summary = PlanSummary.from_show_json(json.loads(self.read(stack, cwd, "show", "-json", PLAN_FILE)))
        summary.exit_changes = True
        return summary

    def apply(self, stack: str, cwd: Path) -> None:
        """Apply the saved plan (exactly what was shown and confirmed)."""
        self.run(stack, cwd, "apply", "-input=false", "-no-color", PLAN_FILE)

    def outputs(self, stack: str, cwd: Path) -> dict[str, Any]:
        raw: dict[str, Any] = json.loads(self.read(stack, cwd, "output", "-json") or "{}")
        return {k: v.get("value") for k, v in raw.items()}
