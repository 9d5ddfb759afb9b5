"""`python -m service.engine.launch PARENT_PID -- ARGV...`: run ARGV, tied to its parent.

The engine runs in a process group of its own (the gateway stops the whole group), so it
would survive a gateway killed with SIGKILL as orphans holding the port and the memory: the
vLLM API server and the engine core it starts, which does not follow its own parent.
This launcher is the group's leader and guardian. It asks the kernel for a SIGTERM when
the process that started it dies (prctl PR_SET_PDEATHSIG), checks that this parent is still
the one that started it (it may have died before the request took effect), runs ARGV in its
own group and waits. On a SIGTERM from a dead parent it SIGKILLs the whole group, itself
included; on the gateway's own SIGTERM (sent to the whole group: a normal stop) it waits for
the engine to finish and exits with its status.

Standard library only, and no `preexec_fn`: that runs between fork and exec in a process
that may hold another thread's locks.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from types import FrameType

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def tie_to_parent(parent_pid: int, sig: signal.Signals = signal.SIGTERM) -> None:
    """`sig` to this process when its parent dies; exit at once if it already has."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    if os.getppid() != parent_pid:
        raise SystemExit(f"engine launcher: parent {parent_pid} is gone; not starting the engine")


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--" or not argv[0].isdigit():
        raise SystemExit("usage: python -m service.engine.launch PARENT_PID -- ARGV...")
    parent = int(argv[0])

    def on_term(signum: int, frame: FrameType | None) -> None:
        if os.getppid() != parent:  # the gateway is gone: take the whole group down now
            os.killpg(0, signal.SIGKILL)

    signal.signal(signal.SIGTERM, on_term)
    tie_to_parent(parent)
    engine = subprocess.Popen(argv[2:])  # same process group: the gateway's signals reach it
    code = engine.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
