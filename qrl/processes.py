"""Processes that qrl starts (grid runs, tuning trials and workers) stop when the process
that started them dies, however it dies."""

from __future__ import annotations

import os
import signal
import sys

# A job started with this variable set to the grid process's pid asks Linux, as its first
# act, to be sent SIGTERM when that process dies (:func:`stop_with_parent`): so a grid killed
# with kill -9 leaves no orphan runs. (Asked by the job itself, not in a preexec_fn: the grid
# starts jobs from several threads, where code between fork and exec can deadlock.)
PARENT_VARIABLE = "QRL_STOP_WITH_PARENT"


def stop_with_parent() -> None:
    """For a job of ``qrl compare`` (``QRL_STOP_WITH_PARENT`` holds the grid's pid): ask Linux
    to send SIGTERM to this process when the grid process dies, and end at once if it
    already has; nothing elsewhere."""
    parent = os.environ.pop(PARENT_VARIABLE, None)
    if parent is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1  # linux/prctl.h
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)
    if str(os.getppid()) != parent:  # the grid died before the request took effect
        sys.exit(130)
