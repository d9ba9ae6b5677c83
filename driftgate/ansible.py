"""diff and apply for Ansible targets, through ansible-runner.

`check()` runs the bundle's playbook with ``--check --diff`` and turns the
events into a `Plan` (one `Change` per host and task that would change: drift
is ``res.changed``, not the presence of a diff). `apply()` runs it for real
and returns per host, per task results.

ansible-runner is used defensively (see DESIGN.md): a fresh private data
directory per run under ``$DRIFTGATE_HOME/runs``, removed afterwards so no
artifact (its ``command`` file stores the environment) or key stays on disk;
``suppress_env_files``; host-key checking on; the venv's ``bin`` first on
PATH. Called by the diff and apply tasks and by the CLI's read-only plan.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from driftgate import home, policy
from driftgate.config import Environment
from driftgate.errors import PermanentError, TransientError
from driftgate.models import Action, ApplyResult, Bundle, Change, HostResult, Plan, Stage, TaskResult
from driftgate.secrets import Masker

log = logging.getLogger(__name__)

_TASK_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


# An unreachable host is usually transient, but not when SSH itself refuses.
_PERMANENT_SSH_FAILURES = ("Host key verification failed", "REMOTE HOST IDENTIFICATION HAS CHANGED", "Permission denied")


@dataclass(frozen=True)
class SSHAccess:
    """How to reach remote hosts, loaded from an AnsibleSSH block."""

    user: str | None = None
    private_key: str | None = None
    known_hosts: str | None = None


@dataclass(frozen=True)
class _TaskEvent:
    host: str
    task: str
    module: str
    status: str
    res: dict[str, Any]
    ignore_errors: bool
    changed: bool = False  # Ansible's `changed`, or, for no_log tasks, what the stats reveal


def check(
    env: Environment, bundle: Bundle, *, ssh: SSHAccess | None = None, masker: Masker | None = None
) -> Plan:
    """What the playbook would change, per host and task (``--check --diff``)."""
    masker = masker or Masker()
    events = _run(env, bundle, check_mode=True, ssh=ssh, masker=masker)
    changes = []
    for event in events:
        if event.status in ("failed", "unreachable") and not event.ignore_errors:
            _raise_for(event, env, Stage.DIFF, masker)
        if event.changed:
            action = _action(event.res)
            rules = policy.ansible_risk_rules(
                action=action, module=event.module, task=event.task, policy=env.approval
            )
            changes.append(
                Change(
                    action=action,
                    target=event.host,
                    name=event.task,
                    module=event.module,
                    risky=bool(rules),
                    rules=rules,
                    diff=masker(_diff_text(event.res)),
                )
            )
    return Plan(
        environment=env.name, revision=bundle.commit, changes=tuple(changes), hosts=bundle.hosts
    )


def apply(
    env: Environment, bundle: Bundle, *, ssh: SSHAccess | None = None, masker: Masker | None = None
) -> ApplyResult:
    """Run the playbook for real; per host, per task results. Never raises for a
    failed task: the result says which host and task failed, and the flow decides."""
    masker = masker or Masker()
    events = _run(env, bundle, check_mode=False, ssh=ssh, masker=masker)
    per_host: dict[str, list[TaskResult]] = {host: [] for host in bundle.hosts}
    for event in events:
        status = "changed" if event.changed else event.status
        message = masker(str(event.res.get("msg", ""))) if status in ("failed", "unreachable") else ""
        per_host.setdefault(event.host, []).append(
            TaskResult(host=event.host, task=event.task, status=status, message=message)
        )
    hosts = []
    for host, results in per_host.items():
        counts = {s: sum(r.status == s for r in results) for s in ("ok", "changed", "failed", "unreachable", "skipped")}
        hosts.append(HostResult(host=host, tasks=tuple(results), **counts))
    return ApplyResult(hosts=tuple(hosts))


def _run(
    env: Environment, bundle: Bundle, *, check_mode: bool, ssh: SSHAccess | None, masker: Masker
) -> list[_TaskEvent]:
    import ansible_runner  # ~0.2 s; only the diff and apply stages pay it

    stage = Stage.DIFF if check_mode else Stage.APPLY
    events: list[_TaskEvent] = []
    changed_per_host: dict[str, int] = {}

    def on_event(event: dict[str, Any]) -> bool:
        status = _TASK_EVENTS.get(event.get("event", ""))
        data = event.get("event_data", {})
        if status:
            res = data.get("res") or {}
            events.append(
                _TaskEvent(
                    host=data.get("host", "?"),
                    task=data.get("task", "?"),
                    module=data.get("task_action", ""),
                    status=status,
                    res=res,
                    ignore_errors=bool(data.get("ignore_errors")),
                    changed=status == "ok" and bool(res.get("changed")),
                )
            )
        elif event.get("event") == "playbook_on_stats":
            changed_per_host.update(data.get("changed") or {})
        return False  # keep nothing on disk

    with _private_data_dir(bundle) as pdd, tempfile.TemporaryDirectory(prefix="dg-cp-") as control_dir:
        known_hosts = pdd / "known_hosts"
        known_hosts.write_text(ssh.known_hosts if ssh and ssh.known_hosts else "")
        runner = ansible_runner.run(
            private_data_dir=str(pdd),
            playbook=bundle.playbook,
            inventory=[str(pdd / source) for source in bundle.inventory],
            extravars=env.target.vars or None,
            cmdline="--check --diff" if check_mode else "--diff",
            envvars=_ansible_env(pdd, known_hosts, ssh, Path(control_dir)),
            ssh_key=ssh.private_key if ssh and ssh.private_key else None,
            suppress_env_files=True,
            quiet=True,
            timeout=int(env.target.timeout.total_seconds()),
            event_handler=on_event,
        )
        output = _read_stdout(runner)
    if runner.status == "timeout":
        raise TransientError(
            f"environment {env.name!r}: ansible-playbook did not finish within "
            f"{env.target.timeout} (target.timeout)",
            stage=stage,
        )
    if runner.status == "failed" and not events:
        # Failed before any task ran: a syntax error, an undefined variable, a missing role.
        raise PermanentError(
            f"environment {env.name!r}: playbook {bundle.playbook} failed before running a task: "
            f"{masker(_error_lines(output))}",
            stage=stage,
        )
    return _reveal_hidden_changes(events, changed_per_host)


def _reveal_hidden_changes(events: list[_TaskEvent], changed_per_host: dict[str, int]) -> list[_TaskEvent]:
    """A no_log task's result is censored, `changed` included; the play's stats still
    count it. When a host changed more than its visible tasks say, its censored
    tasks are counted as changed (all of them: Ansible hides which)."""
    result = list(events)
    for host, total in changed_per_host.items():
        visible = sum(e.changed for e in events if e.host == host)
        if total <= visible:
            continue
        for i, event in enumerate(result):
            if event.host == host and event.status == "ok" and "censored" in event.res:
                result[i] = replace(event, changed=True)
    return result


def _ansible_env(pdd: Path, known_hosts: Path, ssh: SSHAccess | None, control_dir: Path) -> dict[str, str]:
    venv_bin = os.path.dirname(sys.executable)
    env = {
        "PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "/usr/bin:/bin")]),
        # ansible-runner switches host-key checking off; driftgate wants it on.
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_SSH_ARGS": (
            "-C -o ControlMaster=auto -o ControlPersist=10s -o StrictHostKeyChecking=yes "
            f"-o UserKnownHostsFile={known_hosts} -o BatchMode=yes"
        ),
        # Connections are shared within a run only: another run may use another
        # key, and a persisted master to a reused address would reach the old host.
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(pdd / "tmp"),
        "ANSIBLE_CONFIG": "",  # never pick up an ansible.cfg from the cwd
    }
    if ssh and ssh.user:
        env["ANSIBLE_REMOTE_USER"] = ssh.user
    return env


@contextmanager
def _private_data_dir(bundle: Bundle) -> Iterator[Path]:
    """A fresh copy of the bundle per run; deleted afterwards, whatever happens."""
    pdd = Path(tempfile.mkdtemp(prefix="run-", dir=home.subdir("runs")))
    try:
        shutil.copytree(bundle.directory, pdd, symlinks=True, dirs_exist_ok=True)
        yield pdd
    finally:
        shutil.rmtree(pdd, ignore_errors=True)


def _read_stdout(runner: Any) -> str:
    try:
        return runner.stdout.read()
    except Exception:  # no stdout file: the process never started
        return ""


def _error_lines(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith(("ERROR!", "[ERROR]"))]
    picked = lines[errors[0] : errors[0] + 4] if errors else lines[-4:]
    return " ".join(picked) or "no output"


def _raise_for(event: _TaskEvent, env: Environment, stage: Stage, masker: Masker) -> None:
    message = masker(str(event.res.get("msg", "")).strip()) or "no message"
    where = f"environment {env.name!r}: host {event.host!r}, task {event.task!r}"
    if event.status == "unreachable":
        if any(sign in message for sign in _PERMANENT_SSH_FAILURES):
            raise PermanentError(
                f"{where}: host unreachable: {message} (check the host keys in the target's ssh block)",
                stage=stage,
            )
        raise TransientError(f"{where}: host unreachable: {message}", stage=stage)
    raise PermanentError(f"{where}: failed in check mode: {message}", stage=stage)


def _diff_entries(res: dict[str, Any]) -> list[dict[str, Any]]:
    entries = res.get("diff") or []
    if isinstance(entries, dict):
        entries = [entries]
    for item in res.get("results") or []:  # loops report a diff per item
        if isinstance(item, dict):
            entries.extend(_diff_entries(item))
    return [e for e in entries if isinstance(e, dict)]


def _action(res: dict[str, Any]) -> Action:
    for entry in _diff_entries(res):
        before, after = entry.get("before"), entry.get("after")
        if isinstance(after, dict) and after.get("state") == "absent":
            return Action.DELETE
        if isinstance(before, dict) and before.get("state") == "absent":
            return Action.CREATE
        if before == "" and after and "before_header" not in entry:  # copy to a new file
            return Action.CREATE
    return Action.UPDATE


def _diff_text(res: dict[str, Any]) -> str:
    """ansible's structured diffs as one unified diff a person can read."""
    if "censored" in res:
        return "(hidden: the task has no_log: true)"
    chunks = []
    for entry in _diff_entries(res):
        if entry.get("prepared"):
            chunks.append(str(entry["prepared"]).rstrip("\n"))
            continue
        if "before" not in entry and "after" not in entry:
            continue
        before, after = _as_text(entry.get("before")), _as_text(entry.get("after"))
        lines = difflib.unified_diff(
            before.splitlines(),
            after.splitlines(),
            fromfile=str(entry.get("before_header") or "before"),
            tofile=str(entry.get("after_header") or "after"),
            lineterm="",
        )
        chunks.append("\n".join(lines))
    return "\n".join(c for c in chunks if c)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, sort_keys=True, default_flow_style=False)
