"""The private directory of one Ansible run, under ``$DRIFTGATE_HOME/runs``.

ansible-runner writes into it what must not stay on disk: its ``command``
file holds the command line (the extra vars) and the whole environment of
the process (a record URL with its password, an API key), and ``stdout`` the
playbook's diffs. So each run gets a fresh directory, deleted when the run
ends however it ends, and one a process killed with -9 could not delete is
deleted by the next run on this machine: the directory is named for its
host and process, ``run.HOST.PID.RANDOM``.

Used by `driftgate.ansible` for every check and apply.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from driftgate import home, pids

# Directories named before they carried their process (``run-RANDOM``) are
# deleted once this old: no run lasts a day at the default target.timeout.
UNNAMED_KEEP_SECONDS = 24 * 3600


@contextmanager
def run_directory() -> Iterator[Path]:
    """A fresh, empty directory for one run, deleted afterwards; first deletes
    those left by dead processes."""
    runs = home.subdir("runs")
    delete_left_by_dead_runs(runs)
    directory = Path(tempfile.mkdtemp(prefix=f"run.{socket.gethostname()}.{os.getpid()}.", dir=runs))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def delete_left_by_dead_runs(runs: Path) -> list[Path]:
    """Delete the run directories in ``runs`` whose process on this machine is
    gone (and unnamed ones older than `UNNAMED_KEEP_SECONDS`); returns them.
    Another machine's (a shared home) are left to it."""
    deleted = []
    for entry in runs.iterdir():
        if not entry.is_dir() or not _left_by_dead_run(entry):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        deleted.append(entry)
    return deleted


def _left_by_dead_run(entry: Path) -> bool:
    if entry.name.startswith("run-"):  # unnamed: by its age
        try:
            return entry.stat().st_mtime < time.time() - UNNAMED_KEEP_SECONDS
        except OSError:
            return False
    if not entry.name.startswith("run."):
        return False
    # run.HOST.PID.RANDOM: a host name may hold dots, mkdtemp's RANDOM does not.
    owner, _, _random = entry.name.removeprefix("run.").rpartition(".")
    host, _, pid = owner.rpartition(".")
    return host == socket.gethostname() and pid.isdigit() and not pids.alive(int(pid))
