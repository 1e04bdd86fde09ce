"""A `serve --workers N` process ends when the supervisor that started it does.

uvicorn's supervisor restarts a worker that dies and stops them all on
SIGTERM, but one killed outright (SIGKILL, the OOM killer) left its workers
serving the port under PID 1: nothing restarted one that died, and a new
`serve` could not bind the port until someone found them. Linux sends a
process a signal of its choosing when its parent dies (PR_SET_PDEATHSIG):
here SIGTERM, so a worker shuts down as on any stop, finishing the requests
it has in hand. Elsewhere the workers outlive their supervisor, as before.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

#: Where `serve` tells its workers who their supervisor is.
SUPERVISOR_PID = "FLOWHOOK_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def end_with_supervisor(supervisor_pid: int) -> None:
    """Ask for SIGTERM when the parent dies; if it died already (before the ask), stop now."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != supervisor_pid:
        os.kill(os.getpid(), signal.SIGTERM)
