"""Processes as the tests see them: waiting for a condition, finding what a
command started by an environment mark (however it detached), reading a
process's state and command line from /proc. Used by the tests that kill."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest


def wait_for(condition, what: str, *, timeout: float = 180, proc: subprocess.Popen[str] | None = None, log: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition`` (a cheap check of the thing itself) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{what}: the process ended ({proc.returncode}): {log.read_text()[-3000:] if log else ''}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s" + (f": {log.read_text()[-3000:]}" if log else ""))
        time.sleep(0.1)


def marked(mark: str) -> set[int]:
    """Every live process whose environment carries ``DRIFTGATE_TEST_MARK=mark``:
    what one sync started, however it detached (Ansible's workers call setsid;
    walking the process tree from the killed command would miss its orphans)."""
    found = set()
    needle = f"DRIFTGATE_TEST_MARK={mark}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0") and alive(int(entry.name)):
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
