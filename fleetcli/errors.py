"""Exit statuses and the errors every command ends with: one line each, never a traceback."""

from __future__ import annotations

from collections.abc import Sequence

PROG = "llm-fleet"

EXIT_OK = 0
EXIT_FAILURE = 1  # a runtime failure: terraform failed, a cloud refused, an endpoint failed the smoke test
EXIT_USAGE = 2  # a user mistake: a flag, an unknown stack, the fleet file
EXIT_CHANGES = 2  # `plan` only: the plan has changes (every error of `plan` exits 1; see main.py)
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A problem the operator can act on, printed as `llm-fleet: error: <message>`."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def lines(self) -> list[str]:
        return [f"{PROG}: error: {self.message}"]


class UsageError(CliError):
    """A bad flag, argument or combination of them (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, EXIT_USAGE)


class FleetFileError(CliError):
    """The fleet file's own one-line errors (`FILE: field.path: what is wrong; allowed: ...`)."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        super().__init__(f"{source}: invalid fleet file", EXIT_USAGE)
        self.source = source
        self.problems = list(problems)

    def lines(self) -> list[str]:
        n = len(self.problems)
        return [f"{self.source}: {p}" for p in self.problems] + [
            f"{self.source}: invalid fleet file ({n} problem{'s' if n != 1 else ''})"
        ]


class PrerequisitesError(CliError):
    """Several independent prerequisites missing at once: one line each."""

    def __init__(self, messages: Sequence[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = list(messages)

    def lines(self) -> list[str]:
        return [f"{PROG}: error: {m}" for m in self.messages]
