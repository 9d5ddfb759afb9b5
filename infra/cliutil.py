"""What every command line of the project shares: `python -m infra` and the operator tools
(`python -m scripts.ops.*`).

Exit statuses, an argument parser whose mistakes are one line, the `--file` option, fleet-file
errors as one line each, and plain text tables. Only the standard library and the fleet model.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from infra.config import FleetConfigError

EXIT_OK = 0
EXIT_PROBLEM = 1  # the tool ran and found something wrong (does not fit, unhealthy, ...)
EXIT_USAGE = 2  # bad input: a flag, the fleet file
EXIT_CLOUD = 3  # a cloud API refused or could not be reached


class ArgParser(argparse.ArgumentParser):
    """argparse that exits 2 with one line (plus usage) instead of its own format."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def add_fleet_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--file", help="fleet file (default: regions.yaml)")


def fleet_problems(exc: FleetConfigError) -> list[str]:
    """One line per mistake, then a count: what `check` prints."""
    n = len(exc.errors)
    lines = [f"{exc.source}: {err}" for err in exc.errors]
    return [*lines, f"{exc.source}: invalid fleet file ({n} problem{'s' if n != 1 else ''})"]


def fleet_problem(exc: FleetConfigError) -> str:
    """The first mistake, and how to see the others: what a tool that needs a fleet prints."""
    more = f" (and {len(exc.errors) - 1} more; run: python -m infra check)" if len(exc.errors) > 1 else ""
    return f"{exc.source}: {exc.errors[0]}{more}"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numbers_right: bool = True) -> str:
    """A plain text table: left-aligned text; numbers right-aligned unless `numbers_right` is off."""
    cells = [list(header), *[list(r) for r in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]

    def fmt(row: list[str]) -> str:
        out = []
        for cell, width in zip(row, widths, strict=True):
            numeric = bool(cell) and cell.replace(".", "", 1).replace(",", "").lstrip("-$").replace("%", "").isdigit()
            out.append(cell.rjust(width) if numeric and numbers_right else cell.ljust(width))
        return "  ".join(out).rstrip()

    lines = [fmt(cells[0]), "  ".join("-" * w for w in widths)]
    lines += [fmt(row) for row in cells[1:]]
    return "\n".join(lines)
