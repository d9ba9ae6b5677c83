"""driftgate.playbook_guard, on its own: nothing a playbook starts outlives
driftgate's process, however it detached, and however the run ends (driftgate
killed with -9, ansible-runner's timeout, the playbook ending first), except
a process it may not signal (another user's), which it names and leaves.

The playbook here is a stand-in shaped like ansible-playbook where it matters:
it forks workers that call setsid, each running a shell that runs a shell that
runs a long command, while short-lived shells come and go (Ansible's workers
fork one per task). "driftgate" is a small Python process that starts the guard
as ansible-runner would, as its child. The end-to-end version, with the real
console script and Ansible, is tests/test_locks.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from driftgate import playbook_guard
from tests.processes import cmdline, marked, wait_for

PLAYBOOK = """\
import os, subprocess, sys, time
for _ in range(3):
    if os.fork() == 0:
        os.setsid()  # as Ansible's workers do
        subprocess.Popen(["/bin/sh", "-c", "/bin/sh -c 'sleep 300'"])
        while True:  # churn: the processes below change while the guard looks
            subprocess.call(["/bin/sh", "-c", "sleep 0.01"])
open(sys.argv[1], "w").close()  # started
while not os.path.exists(sys.argv[2]):  # until the test says: end first, the workers still running
    time.sleep(0.05)
sys.exit(3)
"""

# The playbook above, starting first a process of another user (see NOT_OURS).
PLAYBOOK_WITH_ANOTHER_USERS = PLAYBOOK.replace("for _ in range(3):", 'subprocess.Popen(["sleep", "301"])\nfor _ in range(3):', 1)

# A mock, for a fault these tests cannot cause: a process of another user, which the
# guard may not signal (a `become` module running as root when driftgate is not).
# The tests run as root, for whom no process is another's; so this runs the guard
# with an os.kill that refuses (EPERM) the processes started as `sleep 301`.
NOT_OURS = """\
import os, runpy
real_kill = os.kill
def kill(pid, sig):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            if cmdline.read() == b"sleep\\x00301\\x00":
                raise PermissionError(1, "Operation not permitted")
    except FileNotFoundError:
        pass
    real_kill(pid, sig)
os.kill = kill
runpy.run_path(os.environ["DRIFTGATE_TEST_GUARD"], run_name="__main__")
"""

DRIFTGATE = """\
import os, subprocess, sys
guard, log, *playbook = sys.argv[1:]
proc = subprocess.Popen([sys.executable, guard, str(os.getpid()), log, *playbook])
print(proc.pid, flush=True)
sys.exit(proc.wait())
"""


@dataclass
class GuardedRun:
    driftgate: subprocess.Popen[str]
    guard: int
    mark: str
    log: Path
    end: Path


@contextmanager
def guarded_playbook(tmp_path: Path, *, source: str = PLAYBOOK, guard: str = playbook_guard.__file__) -> Iterator[GuardedRun]:
    """driftgate running the playbook ``source`` under ``guard`` (the guard, or NOT_OURS
    running it), once the playbook's workers run; kills whatever is left at the end,
    whatever the test found. The playbook ends (3) when the run's ``end`` file exists."""
    playbook, started, log = tmp_path / "playbook.py", tmp_path / "started", tmp_path / "guard.log"
    playbook.write_text(source)
    mark = uuid.uuid4().hex
    driftgate = subprocess.Popen(
        [sys.executable, "-c", DRIFTGATE, guard, str(log), sys.executable, str(playbook), str(started), str(tmp_path / "end")],
        env={**os.environ, "DRIFTGATE_TEST_MARK": mark, "DRIFTGATE_TEST_GUARD": playbook_guard.__file__},
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        assert driftgate.stdout is not None
        guard = int(driftgate.stdout.readline())
        wait_for(lambda: started.exists() and sum("sleep 300" in cmdline(p) for p in marked(mark)) >= 3, "the playbook's workers run", proc=driftgate)
        yield GuardedRun(driftgate, guard, mark, log, tmp_path / "end")
    finally:
        deadline = time.monotonic() + 10
        while marked(mark) and time.monotonic() < deadline:  # the workers fork while this kills
            for pid in marked(mark):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if driftgate.poll() is None:
            driftgate.kill()
        driftgate.wait(10)


def left_after(run: GuardedRun, seconds: float = 15) -> set[str]:
    """The command lines of the run's processes still alive after ``seconds`` (or fewer, once none is)."""
    deadline = time.monotonic() + seconds
    while marked(run.mark) and time.monotonic() < deadline:
        time.sleep(0.05)
    return {cmdline(p) for p in marked(run.mark)}


def test_driftgate_killed_takes_every_process_of_the_playbook_with_it(tmp_path: Path) -> None:
    with guarded_playbook(tmp_path) as run:
        os.kill(run.driftgate.pid, signal.SIGKILL)
        run.driftgate.wait(10)
        assert left_after(run) == set(), run.log.read_text()
    assert "driftgate's process ended" in run.log.read_text()
    assert "no process left" in run.log.read_text()


def test_a_timeout_sigterm_to_the_guard_ends_everything_below_it(tmp_path: Path) -> None:
    with guarded_playbook(tmp_path) as run:
        os.kill(run.guard, signal.SIGTERM)  # what ansible-runner's timeout sends
        assert run.driftgate.wait(15) == 1
        assert left_after(run) == set(), run.log.read_text()


def test_a_playbook_that_ends_first_leaves_no_detached_worker(tmp_path: Path) -> None:
    with guarded_playbook(tmp_path) as run:
        run.end.touch()
        assert run.driftgate.wait(15) == 3  # the playbook's own exit code, passed on
        assert left_after(run) == set(), run.log.read_text()
    assert "the playbook ended (3)" in run.log.read_text()


def test_a_process_it_may_not_kill_is_named_and_left_not_waited_for(tmp_path: Path) -> None:
    # Before, the guard tried it again every 50 ms until it ended by itself: the
    # sync waited as long as the other user's task ran (here, 301 s).
    not_ours = tmp_path / "not_ours.py"
    not_ours.write_text(NOT_OURS)
    with guarded_playbook(tmp_path, source=PLAYBOOK_WITH_ANOTHER_USERS, guard=str(not_ours)) as run:
        run.end.touch()
        assert run.driftgate.wait(15) == 3  # the run ends, with the playbook's own exit code
        assert {c.strip() for c in left_after(run, seconds=2)} == {"sleep 301"}, run.log.read_text()  # the rest is gone
        log = run.log.read_text()
    (stranger,) = [line for line in log.splitlines() if "may not kill" in line]  # named once, not every round
    assert "(sleep): another user's; left running" in stranger
    assert "nothing left it may kill" in log and "no process left" not in log


def test_a_process_that_left_the_tree_is_found_by_its_token(tmp_path: Path) -> None:
    # Nothing in a test can leave a subreaper's tree, so the escapee is started
    # beside the guard, with its token: the second way of finding what to kill.
    guard = playbook_guard.Guard(driftgate=os.getpid(), log_path=str(tmp_path / "guard.log"))
    key, _, value = guard.token.decode().partition("=")
    escapee = subprocess.Popen(["sleep", "300"], env={**os.environ, key: value})
    stranger = subprocess.Popen(["sleep", "300"], env={**os.environ, key: value + "0"})
    try:
        assert guard.carrying_token() == {escapee.pid}
    finally:
        for proc in (escapee, stranger):
            proc.kill()
            proc.wait()
