"""diff and apply for Ansible targets, through ansible-runner.

`check()` runs the bundle's playbook with ``--check --diff`` and turns the
events into a `Plan` (one `Change` per host and task that would change: drift
is ``res.changed``, not the presence of a diff). A task whose effect check mode
cannot predict is a change too, with action ``run`` and a note saying why:
one check mode skipped (command, shell, raw, script without creates/removes,
modules without check mode, ``when: not ansible_check_mode``), one with
``check_mode: false`` that reported a change (it ran for real, and runs again
at apply), and a command/shell/raw/script/reboot/expect task that reported
one. `apply()` runs the playbook for real and returns per host, per task
results, and every task that changed as a `Change`, so the record can show a
change the plan did not list. Tasks are told apart by where they are defined
(``task_path``, file:line and run count), not by name.

ansible-runner is used defensively: a fresh private data
directory per run under ``$DRIFTGATE_HOME/runs``, removed afterwards so no
artifact (its ``command`` file stores the environment) or key stays on disk,
and removed by the next run if this process was killed (driftgate.rundirs);
``suppress_env_files``; host-key checking on; the venv's ``bin`` first on
PATH. Called by the Ansible target (`driftgate.targets.ansible`).
"""

from __future__ import annotations

import difflib
import json
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

from driftgate import playbook_guard, rundirs
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


# driftgate's own callback (driftgate/ansible_callbacks/driftgate_tasks.py) reports
# what ansible-runner's events leave out: why a task was skipped, its check_mode.
_CALLBACK_DIR = Path(__file__).with_name("ansible_callbacks")
_CALLBACK = "driftgate_tasks"
_FACTS_FILE = "driftgate-tasks.jsonl"

# Where a local host's modules are written, each with its task's arguments (a
# secret in a copy's content): the run's directory, which the next run deletes
# if this one is killed (driftgate.rundirs), not ~/.ansible/tmp, where a kill
# leaves them. Set for local hosts by the Ansible target's inventory overlay;
# read from the run's environment, since one bundle serves many runs.
RUN_TMP_ENV = "DRIFTGATE_RUN_TMP"
LOCAL_MODULE_TMP = "{{ lookup('env', '%s') | default('~/.ansible/tmp', true) }}" % RUN_TMP_ENV

# An unreachable host is usually transient, but not when SSH itself refuses, or
# when its name does not exist (a typo; a DNS server that is down says
# "Temporary failure in name resolution" instead, and that is retried).
_PERMANENT_SSH_FAILURES = {
    "Host key verification failed": "check the host keys in the target's ssh block",
    "REMOTE HOST IDENTIFICATION HAS CHANGED": "check the host keys in the target's ssh block",
    "Permission denied": "check the user and key in the target's ssh block",
    "Name or service not known": "no such host name: check the inventory",
    "nodename nor servname provided": "no such host name: check the inventory",
}


# Check mode cannot see what these do: a change from them is a leap of faith.
UNPREDICTABLE_MODULES = frozenset(
    {"command", "shell", "raw", "script", "reboot", "expect", "win_command", "win_shell", "win_reboot"}
)


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
    uuid: str = ""
    task_path: str = ""  # file:line in the bundle, #N from the task's second run on the host
    check_mode: bool | None = None  # the task's effective check_mode (False: runs for real in checks)
    skip: str = ""  # why it was skipped: check-mode | condition | hidden (no_log hid it)


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
        note = _unpredictable(event)
        if event.changed or note:
            changes.append(_change(event, env, masker, action=Action.RUN if note else _action(event.res), note=note))
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
    changed = []
    for event in events:
        status = "changed" if event.changed else event.status
        message = masker(str(event.res.get("msg", ""))) if status in ("failed", "unreachable") else ""
        per_host.setdefault(event.host, []).append(
            TaskResult(host=event.host, task=event.task, status=status, message=message, task_path=event.task_path)
        )
        if event.changed:
            unpredictable = _short(event.module) in UNPREDICTABLE_MODULES
            changed.append(_change(event, env, masker, action=Action.RUN if unpredictable else _action(event.res)))
    hosts = []
    for host, results in per_host.items():
        counts = {s: sum(r.status == s for r in results) for s in ("ok", "changed", "failed", "unreachable", "skipped")}
        hosts.append(HostResult(host=host, tasks=tuple(results), **counts))
    return ApplyResult(hosts=tuple(hosts), changes=tuple(changed))


def _change(event: _TaskEvent, env: Environment, masker: Masker, *, action: Action, note: str = "") -> Change:
    # Risk rules are the Ansible target's (driftgate.targets.ansible), added by driftgate.policy.
    return Change(
        action=action,
        target=event.host,
        name=event.task,
        module=event.module,
        diff=masker(_diff_text(event.res)),
        task_path=event.task_path,
        note=note,
    )


def _short(module: str) -> str:
    return module.rsplit(".", 1)[-1]


def _unpredictable(event: _TaskEvent) -> str:
    """Why check mode cannot predict what this task does at apply ("" if it can).

    A skip by a condition is predictable (the task will not run at apply
    either, unless the condition reads something only apply produces: the
    record then marks it unplanned). ``changed_when: false`` does not make a
    skipped command predictable: it changes what Ansible reports, not what
    the command does. A task that check mode ran and that reported no change
    (``creates:``/``removes:`` already hold, ``check_mode: false`` with
    ``changed_when``) is predictable: it is no change.
    """
    module = _short(event.module)
    if event.status == "skipped":
        if event.skip == "check-mode" or (event.skip == "hidden" and module in UNPREDICTABLE_MODULES):
            return f"check mode skipped this {module} task: what it does is unknown until it runs at apply"
        return ""
    if event.status != "ok" or not event.changed:
        return ""
    if event.check_mode is False:
        return (
            "check_mode: false: the task ran for real during this plan and runs again at apply; "
            "what it does then is unknown"
        )
    if module in UNPREDICTABLE_MODULES:
        return f"check mode cannot see what {module} does: it runs at apply, with an unknown effect"
    return ""


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
                    uuid=str(data.get("task_uuid", "")),
                    task_path=str(data.get("task_path", "")),
                )
            )
        elif event.get("event") == "playbook_on_stats":
            changed_per_host.update(data.get("changed") or {})
        return False  # keep nothing on disk

    with _private_data_dir(bundle) as pdd, tempfile.TemporaryDirectory(prefix="dg-cp-") as control_dir:
        bin_dir = _playbook_that_dies_with_this_process(Path(control_dir))
        known_hosts = pdd / "known_hosts"
        known_hosts.write_text(ssh.known_hosts if ssh and ssh.known_hosts else "")
        runner = ansible_runner.run(
            private_data_dir=str(pdd),
            playbook=bundle.playbook,
            inventory=[str(pdd / source) for source in bundle.inventory],
            extravars=env.target.vars or None,
            cmdline="--check --diff" if check_mode else "--diff",
            envvars={**_ansible_env(pdd, known_hosts, ssh, Path(control_dir), bin_dir), **_callback_env(pdd)},
            ssh_key=ssh.private_key if ssh and ssh.private_key else None,
            suppress_env_files=True,
            quiet=True,
            timeout=int(env.target.timeout.total_seconds()),
            event_handler=on_event,
        )
        output = _read_stdout(runner)
        facts = _read_facts(pdd / _FACTS_FILE)
    if runner.status == "timeout":
        # Permanent: running it again would wait as long again (a 30-minute check
        # retried was two hours). Raise the timeout, or fix what the playbook waits for.
        raise PermanentError(
            f"environment {env.name!r}: ansible-playbook did not finish within "
            f"{env.target.timeout} (target.timeout); not run again: raise target.timeout "
            "or look at what the playbook waits for",
            stage=stage,
        )
    if runner.status == "failed" and not events:
        # Failed before any task ran: a syntax error, an undefined variable, a missing role.
        raise PermanentError(
            f"environment {env.name!r}: playbook {bundle.playbook} failed before running a task: "
            f"{masker(_error_lines(output))}",
            stage=stage,
        )
    if facts is None and check_mode and events:
        raise PermanentError(
            f"environment {env.name!r}: driftgate's Ansible callback ({_CALLBACK}) did not report, so the plan "
            f"cannot tell what check mode skipped; reinstall driftgate ({_CALLBACK_DIR} must hold {_CALLBACK}.py)",
            stage=stage,
        )
    events = _with_facts(events, facts or {}, pdd_prefix=str(pdd) + os.sep)
    return _reveal_hidden_changes(events, changed_per_host)


def _callback_env(pdd: Path) -> dict[str, str]:
    return {
        "ANSIBLE_CALLBACK_PLUGINS": str(_CALLBACK_DIR),
        "ANSIBLE_CALLBACKS_ENABLED": _CALLBACK,
        "DRIFTGATE_TASK_FACTS": str(pdd / _FACTS_FILE),
    }


def _read_facts(path: Path) -> dict[tuple[str, str], list[dict[str, Any]]] | None:
    """The callback's lines per (host, task uuid), in order; None if it never ran."""
    try:
        lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError):
        return None
    if not lines or lines[0] != {_CALLBACK: 1}:
        return None
    facts: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for line in lines[1:]:
        facts.setdefault((str(line.get("host")), str(line.get("uuid"))), []).append(line)
    return facts


def _with_facts(
    events: list[_TaskEvent], facts: dict[tuple[str, str], list[dict[str, Any]]], *, pdd_prefix: str
) -> list[_TaskEvent]:
    """Events with the callback's facts, and task paths relative to the bundle,
    numbered from a task's second run on a host (loops over include_tasks)."""
    runs: dict[tuple[str, str], int] = {}
    result = []
    for event in events:
        path = event.task_path.removeprefix(pdd_prefix)
        runs[(event.host, path)] = n = runs.get((event.host, path), 0) + 1
        update: dict[str, Any] = {"task_path": path if n == 1 else f"{path}#{n}"}
        pending = facts.get((event.host, event.uuid)) if event.status in ("ok", "skipped") else None
        if pending:
            fact = pending.pop(0)
            update.update(check_mode=fact.get("check_mode"), skip=str(fact.get("skip") or ""))
        elif event.status == "skipped":
            update["skip"] = "check-mode"  # no word from the callback: assume the worst
        result.append(replace(event, **update))
    return result


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


# Put first on the PATH ansible-runner searches: runs the real ansible-playbook
# under driftgate.playbook_guard, so that nothing it starts outlives this process.
_PLAYBOOK_STAND_IN = """\
#!{python}
import runpy, sys
sys.argv = [{guard!r}, {parent!r}, {log!r}, {playbook!r}, *sys.argv[1:]]
runpy.run_path({guard!r}, run_name="__main__")
"""

GUARD_LOG = "playbook-guard.log"


def _playbook_that_dies_with_this_process(directory: Path) -> Path:
    """A bin directory holding the ansible-playbook stand-in above; returns it.
    The guard's log goes to ``directory`` (see `driftgate.playbook_guard`)."""
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    stand_in = bin_dir / "ansible-playbook"
    stand_in.write_text(
        _PLAYBOOK_STAND_IN.format(
            python=sys.executable,
            guard=playbook_guard.__file__,
            parent=str(os.getpid()),
            log=str(directory / GUARD_LOG),
            playbook=str(Path(sys.executable).with_name("ansible-playbook")),
        )
    )
    stand_in.chmod(0o700)
    return bin_dir


# Not a boundary (a playbook runs code on this machine); it keeps them out by accident.
_DRIFTGATES_CREDENTIALS = (
    "DRIFTGATE_DATABASE_URL",  # the record's, with its password
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
)


def _ansible_env(
    pdd: Path, known_hosts: Path, ssh: SSHAccess | None, control_dir: Path, bin_dir: Path | None = None
) -> dict[str, str]:
    venv_bin = os.path.dirname(sys.executable)
    env = {
        "PATH": os.pathsep.join([*([str(bin_dir)] if bin_dir else []), venv_bin, os.environ.get("PATH", "/usr/bin:/bin")]),
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
        RUN_TMP_ENV: str(pdd / "module-tmp"),  # local hosts' modules (driftgate.targets.ansible)
        "ANSIBLE_CONFIG": "",  # never pick up an ansible.cfg from the cwd
        # driftgate's own credentials, emptied: ansible-runner passes the whole
        # environment on (and writes it into the run's directory), where a
        # `lookup('env')` or `debug: var=ansible_env` would put them in the plan.
        **dict.fromkeys(_DRIFTGATES_CREDENTIALS, ""),
    }
    if ssh and ssh.user:
        env["ANSIBLE_REMOTE_USER"] = ssh.user
    return env


@contextmanager
def _private_data_dir(bundle: Bundle) -> Iterator[Path]:
    """A fresh copy of the bundle per run (driftgate.rundirs: deleted afterwards,
    or by the next run if this process is killed)."""
    with rundirs.run_directory() as pdd:
        shutil.copytree(bundle.directory, pdd, symlinks=True, dirs_exist_ok=True)
        yield pdd


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
        hint = next((hint for sign, hint in _PERMANENT_SSH_FAILURES.items() if sign in message), None)
        if hint is not None:
            raise PermanentError(f"{where}: host unreachable: {message} ({hint})", stage=stage)
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
    """create, update or delete, from the task's structured diff (check mode or apply)."""
    entries = _diff_entries(res)
    for entry in entries:
        before, after = entry.get("before"), entry.get("after")
        if isinstance(after, dict) and after.get("state") == "absent":
            return Action.DELETE
        if isinstance(before, dict) and before.get("state") == "absent":  # file: a new directory, a touched file
            return Action.CREATE
        if before == "" and after and "before_header" not in entry:  # copy, template: dest missing
            return Action.CREATE
    if _creates_missing_file(entries):
        return Action.CREATE
    return Action.UPDATE


def _creates_missing_file(entries: list[dict[str, Any]]) -> bool:
    """lineinfile/blockinfile with ``create: true`` on a path that does not exist.

    Their content diff then starts from nothing, and no "(file attributes)"
    entry comes with it: for a file that exists, even an empty one, those
    modules always report its attributes beside the content."""
    content = [e for e in entries if str(e.get("before_header", "")).endswith(" (content)")]
    attributes = [e for e in entries if str(e.get("before_header", "")).endswith(" (file attributes)")]
    return bool(content) and not attributes and all(e.get("before") == "" and e.get("after") for e in content)


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
