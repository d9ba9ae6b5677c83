"""A killed run's Ansible directory does not outlive it (driftgate.rundirs).

It holds ansible-runner's ``command`` file (the process's whole environment and
the extra vars) and the playbook's output. The end-to-end case, a sync killed
with -9 mid-apply, is tests/test_locks.py; here, which directories the next
run deletes: real processes, one that ended and one alive.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from driftgate import rundirs


def a_dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_the_next_run_deletes_what_dead_processes_left_and_nothing_else(driftgate_home: Path) -> None:
    runs = driftgate_home / "runs"
    host = socket.gethostname()
    dead = runs / f"run.{host}.{a_dead_pid()}.k1ll3d"
    living = runs / f"run.{host}.{os.getpid()}.al1ve"
    elsewhere = runs / f"run.other-machine.example.{a_dead_pid()}.th3irs"  # a shared home: that machine's to judge
    old_unnamed, new_unnamed = runs / "run-0ld0ne", runs / "run-n3w0ne"  # left by versions that did not name them
    for directory in (dead, living, elsewhere, old_unnamed, new_unnamed):
        (directory / "artifacts").mkdir(parents=True)
        (directory / "artifacts" / "command").write_text('{"env": {"DRIFTGATE_DATABASE_URL": "postgresql://u:pw@db/r"}}')
    day_and_more = time.time() - rundirs.UNNAMED_KEEP_SECONDS - 60
    os.utime(old_unnamed, (day_and_more, day_and_more))

    with rundirs.run_directory() as mine:
        assert mine.name.startswith(f"run.{host}.{os.getpid()}.") and mine.is_dir()
        assert sorted(p.name for p in runs.iterdir()) == sorted([mine.name, living.name, elsewhere.name, new_unnamed.name])
    assert not mine.exists()  # its own, at its end
    assert sorted(p.name for p in runs.iterdir()) == sorted([living.name, elsewhere.name, new_unnamed.name])


def test_a_host_name_with_dots_and_dashes_is_read_whole(driftgate_home: Path, monkeypatch) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "worker-3.dc-1.example.org")
    runs = driftgate_home / "runs"
    dead = runs / f"run.worker-3.dc-1.example.org.{a_dead_pid()}.abc_12"
    same_pid_other_host = runs / f"run.worker-3.dc-2.example.org.{a_dead_pid()}.abc_13"
    for directory in (dead, same_pid_other_host):
        directory.mkdir(parents=True)
    assert rundirs.delete_left_by_dead_runs(runs) == [dead]
    no_such_pid = runs / "run.worker-3.dc-1.example.org.99999999999999999999.abc_14"  # beyond any PID: no process
    no_such_pid.mkdir()
    assert rundirs.delete_left_by_dead_runs(runs) == [no_such_pid]
