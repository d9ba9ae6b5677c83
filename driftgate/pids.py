"""Whether a process on this machine is alive, by its PID.

Asked by the record (`driftgate.store`: a run whose process is gone is
recorded interrupted) and by `driftgate.rundirs` (a dead run's directory is
deleted).
"""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while ``pid`` names a live process (another user's too)."""
    if pid <= 0:  # 0 and negatives name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # none, or beyond any PID
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
