"""Runs ansible-playbook so that nothing it starts outlives driftgate's process.

ansible-runner starts ansible-playbook ignoring SIGHUP, in a session of its own:
when the process running it is killed (``kill -9`` of ``driftgate sync``), the
playbook, its workers and their modules would go on applying, beside the next
sync. Started by a stand-in ``ansible-playbook`` that `driftgate.ansible` puts
first on the PATH ansible-runner searches (``runpy``, as a script; it imports
nothing of driftgate's), this guard:

- asks the kernel for SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), and
  watches driftgate's process as well, for when it is not the parent (with an
  SSH key, ansible-runner puts ssh-agent and a shell in between);
- on that, on the SIGTERM/SIGINT that ansible-runner's timeout sends, and when
  the playbook ends by itself (its runner gone, a broken pipe), kills every
  process it started, then exits.

Every process is found two ways, because each alone has missed one: as a
descendant (the guard is a child subreaper, so orphans stay below it; a
process-group kill is not enough, since each of Ansible's workers calls setsid),
and by a token in its environment (set for the playbook, inherited by all it
starts). The guard ends only when the kernel says it has no child left (ECHILD),
not on a /proc walk alone, which can miss a process reparented while it reads;
a process it may not signal (another user's) it names in its log and leaves.

What it did goes to a log beside the stand-in (process ids and names only: a
command line can hold extra vars), left behind only when driftgate was killed,
for whoever looks into it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
TOKEN = "DRIFTGATE_PLAYBOOK_GUARD"


class Guard:
    """One playbook run's guard: ``driftgate`` is the process it outlives no longer than."""

    def __init__(self, driftgate: int, log_path: str) -> None:
        self.driftgate = driftgate
        self.token = f"{TOKEN}={os.getpid()}.{time.time_ns()}".encode()
        self.log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def log(self, message: str) -> None:
        # One write(2) per line, no Python buffer: the signal handler may log while
        # the main thread is logging (a buffered file raises "reentrant call" then).
        try:
            os.write(self.log_fd, f"{time.strftime('%H:%M:%S')} guard {os.getpid()}: {message}\n".encode())
        except OSError:
            pass

    def run(self, playbook: str, args: list[str]) -> None:
        libc = ctypes.CDLL(None)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.stop)
        if os.getppid() == self.driftgate:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        self.log(f"started for driftgate process {self.driftgate} (parent {os.getppid()})")
        if not self.driftgate_alive():
            self.stop()
        threading.Thread(target=self.watch, daemon=True).start()
        key, _, value = self.token.decode().partition("=")
        code = subprocess.call([playbook, *args], env={**os.environ, key: value})
        self.log(f"the playbook ended ({code})")
        self.kill_everything()
        sys.exit(code)

    def stop(self, signum: int | None = None, _frame: object = None) -> None:
        self.log(f"driftgate's process ended ({signal.Signals(signum).name if signum else 'seen by the watch'})")
        self.kill_everything()
        os._exit(1)

    def watch(self) -> None:
        while self.driftgate_alive():
            time.sleep(1)
        self.stop()

    def driftgate_alive(self) -> bool:
        """A killed process stays a zombie until reaped: that is dead too."""
        try:
            return _state_and_parent(self.driftgate)[0] != "Z"
        except (OSError, ValueError, IndexError):
            return False

    def kill_everything(self) -> None:
        """SIGKILL every process this guard started, until none is left.

        A process it may not signal (EPERM: another user's, such as a ``become``
        module running as root when driftgate is not) is named in the log once and
        left running: waiting for it could take as long as the task, with this
        loop walking /proc every 50 ms meanwhile."""
        rounds, not_ours, quiet_rounds = 0, set[int](), 0
        while True:
            found = (self.below() | self.carrying_token()) - not_ours
            for pid in found:
                try:
                    os.kill(pid, signal.SIGKILL)
                except PermissionError:
                    not_ours.add(pid)
                    self.log(f"may not kill {pid} ({_name(pid)}): another user's; left running")
                except OSError:
                    pass
            killed = found - not_ours
            if killed:
                rounds += 1
                self.log("killed " + ", ".join(f"{pid} ({_name(pid)})" for pid in sorted(killed)))
            # Done when the kernel says no child is left; with processes it may not kill
            # still below, when two walks in a row found nothing else (a walk can miss a
            # process reparented while it reads; the next walk finds it below the guard).
            quiet_rounds = quiet_rounds + 1 if not killed else 0
            if (_reap() and not killed) or (not_ours and quiet_rounds >= 2):
                if not_ours:
                    self.log(f"nothing left it may kill ({rounds} rounds of kills); left running: {sorted(not_ours)}")
                else:
                    self.log(f"no process left ({rounds} rounds of kills)")
                return
            time.sleep(0.05)

    def below(self) -> set[int]:
        """Every live process under this one, by parent ids read from /proc."""
        children: dict[int, list[int]] = {}
        for pid in _pids():
            try:
                state, parent = _state_and_parent(pid)
            except (OSError, ValueError, IndexError):
                continue
            if state != "Z":
                children.setdefault(parent, []).append(pid)
        found, todo = set(), [os.getpid()]
        while todo:
            for child in children.get(todo.pop(), []):
                found.add(child)
                todo.append(child)
        return found

    def carrying_token(self) -> set[int]:
        """Every live process whose environment holds this run's token, wherever it went."""
        found = set()
        for pid in _pids():
            try:
                with open(f"/proc/{pid}/environ", "rb") as environ:
                    if self.token in environ.read().split(b"\0") and _state_and_parent(pid)[0] != "Z":
                        found.add(pid)
            except (OSError, ValueError, IndexError):
                continue
        return found


def _pids() -> list[int]:
    me = os.getpid()
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) != me]


def _state_and_parent(pid: int) -> tuple[str, int]:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return fields[0], int(fields[1])


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return "?"


def _reap() -> bool:
    """Reap what has ended; True when the kernel says no child is left at all."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        return True
    return False


if __name__ == "__main__":
    # argv: driftgate's pid, the log's path, the real ansible-playbook, then its arguments.
    Guard(int(sys.argv[1]), sys.argv[2]).run(sys.argv[3], sys.argv[4:])
