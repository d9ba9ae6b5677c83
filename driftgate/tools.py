"""tools: run an external program (kubectl kustomize, helm) with a deadline
and a bounded output.

`run_tool()` starts the program in its own process group with its output in
temporary files, not pipes: when the deadline passes the whole group is
killed (a program's own children, such as a plugin or a git fetch kustomize
starts, would otherwise keep a pipe open and the caller waiting), and the run
ends in one line naming the stage, the program and the setting that bounds
it. Output larger than ``limit`` is refused instead of being read into memory.
Called by `driftgate.manifests` (render). Git runs through GitPython with its
own deadline (`driftgate.git`), ansible-playbook through ansible-runner's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import timedelta

from driftgate.errors import PermanentError
from driftgate.models import Stage


@dataclass(frozen=True)
class ToolResult:
    returncode: int
    stdout: bytes
    stderr: str


def run_tool(
    command: list[str], *, what: str, where: str, stage: Stage, timeout: timedelta, setting: str, limit: int
) -> ToolResult:
    """Run ``command``; raise PermanentError naming ``what`` and ``setting`` when
    it outlives ``timeout`` (a timeout is never retried: it would wait as long
    again) or when it writes more than ``limit`` bytes."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
        try:
            returncode = process.wait(timeout=timeout.total_seconds())
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise PermanentError(
                f"{where}: {stage.value}: {what} did not finish within {_seconds(timeout)} "
                f"(raise {setting} in driftgate.yaml if it needs longer)",
                stage=stage,
            ) from None
        if os.fstat(out.fileno()).st_size > limit:
            raise PermanentError(
                f"{where}: {stage.value}: {what} wrote more than {limit // 2**20} MiB: driftgate renders at most that",
                stage=stage,
            )
        out.seek(0)
        err.seek(0)
        return ToolResult(returncode, out.read(), err.read(64 * 1024).decode("utf-8", "replace"))


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    # Its own session, not yet reaped (so its pid cannot have been reused):
    # the group is the tool and whatever it started.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def _seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g}s"
