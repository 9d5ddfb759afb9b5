"""Rich consoles: results on stdout, progress and prompts on stderr.

Off a terminal (CI logs, pipes) Rich would wrap at 80 columns; tables get a wider page there
unless COLUMNS says otherwise. One-line errors never go through Rich (no wrapping).
"""

from __future__ import annotations

import os
import sys
from functools import cache

from rich.console import Console

PIPE_WIDTH = 200


def _width(stream_isatty: bool) -> int | None:
    if stream_isatty or os.environ.get("COLUMNS"):
        return None
    return PIPE_WIDTH


@cache
def out() -> Console:
    """Results (tables, answers)."""
    return Console(width=_width(sys.stdout.isatty()), highlight=False)


@cache
def err() -> Console:
    """Progress, notes and prompts."""
    return Console(stderr=True, width=_width(sys.stderr.isatty()), highlight=False)


def error_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
