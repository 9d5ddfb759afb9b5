"""`python -m service.engine.launch PARENT_PID -- ARGV...`: exec ARGV, tied to its parent.

The engine runs in a process group of its own (the gateway stops the whole group), so it
would survive a gateway killed with SIGKILL as an orphan holding its port and its memory.
This launcher asks the kernel to SIGKILL it when the process that started it dies
(prctl PR_SET_PDEATHSIG), checks that this parent is still the one that started it (it may
have died before the request took effect), and then becomes the engine (exec). vLLM's
engine core watches its own parent, the API server, and exits when it goes.

Standard library only, and no `preexec_fn`: that runs between fork and exec in a process
that may hold another thread's locks.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def tie_to_parent(parent_pid: int) -> None:
    """SIGKILL this process when its parent dies; exit at once if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent_pid:
        raise SystemExit(f"engine launcher: parent {parent_pid} is gone; not starting the engine")


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        raise SystemExit("usage: python -m service.engine.launch PARENT_PID -- ARGV...")
    tie_to_parent(int(argv[0]))
    os.execvp(argv[2], argv[2:])  # noqa: S606 - become the engine: its argv, no shell


if __name__ == "__main__":
    main(sys.argv[1:])
