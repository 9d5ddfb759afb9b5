"""Progress on stderr: per stack with elapsed time, and per step for the operator tools.

On a terminal: a live line (spinner, `[2/4] aws-us-west-2: apply`, elapsed) above which each
finished stack leaves one line. Off a terminal (CI logs): one line when a step starts and one
when a stack ends, no animation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from scripts.ops._common import Progress as OpsProgress


class StackProgress:
    """Use as a context manager around the whole run; `stack()` around each stack."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = total
        self.live = console.is_terminal
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not self.live,
        )

    def __enter__(self) -> StackProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    @contextmanager
    def stack(self, index: int, name: str) -> Iterator[StackTask]:
        task = StackTask(self, f"[{index}/{self.total}] {name}")
        task.task_id = self._progress.add_task(escape(task.label), total=None)
        try:
            yield task
        finally:
            self._progress.remove_task(task.task_id)

    def note(self, text: str) -> None:
        """A permanent line above the live one (markup allowed)."""
        self._progress.console.print(text)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No live line while the operator reads a plan and answers a prompt."""
        self._progress.stop()
        try:
            yield
        finally:
            self._progress.start()


class StackTask:
    """One stack's line: its current step, then how it ended and how long it took."""

    def __init__(self, owner: StackProgress, label: str) -> None:
        self.owner = owner
        self.label = label
        self.task_id = TaskID(0)
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def step(self, what: str) -> None:
        self.owner._progress.update(self.task_id, description=escape(f"{self.label}: {what}"))
        if not self.owner.live:
            self.owner.console.print(escape(f"{self.label}: {what}"))

    def done(self, ok: bool, text: str) -> None:
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        self.owner.note(f"{mark} {escape(self.label)}: {escape(text)} [dim]({self.seconds:.1f} s)[/]")


@dataclass
class RichSteps(OpsProgress):
    """The operator tools' `Progress` (scripts.ops._common), drawn with Rich on stderr."""

    console: Console | None = None

    @contextmanager
    def step(self, label: str) -> Iterator[None]:
        self._done += 1
        prefix = f"[{self._done}/{self.total}] {label}"
        console = self.console
        if not self.enabled or console is None:
            yield
            return
        started = time.perf_counter()
        try:
            with console.status(escape(prefix + " ...")):
                yield
        except BaseException:
            console.print(f"[red]✗[/] {escape(prefix)}")
            raise
        console.print(f"[green]✓[/] {escape(prefix)} [dim]({time.perf_counter() - started:.1f} s)[/]")
