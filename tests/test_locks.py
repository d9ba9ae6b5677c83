"""Nothing outlives its run: a `driftgate sync` killed with -9 mid-apply frees
its environment (a real Prefect server, and the temporary one, which dies with
the command); a sync that must wait says for whom and gives up in bounded time
(on the test-only kind ``files``, tests/filestarget.py: there the slot is the subject).

Each sync here is the real console script in its own process. "Mid-apply" is
deterministic: the playbook's first apply-only task touches ``applying`` and
the next waits for ``release``, a file only the test creates (the files kind's
apply does the same: ``target.hold``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from driftgate.ansible import GUARD_LOG
from driftgate.demo_repo import DemoWorld, commit_change
from driftgate.models import Outcome
from driftgate.store import Store
from tests.conftest import DRIFTGATE, client_of, edit_config, run_cli
from tests.filestarget import FilesWorld, as_installed_plugin
from tests.prefect_database import seed as seed_prefect_database
from tests.processes import cmdline, marked, wait_for
from tests.test_secrets_on_disk import files_holding

# The condition is about check mode through a variable: a task skipped by a
# `when` that names ansible_check_mode is a change of its own in driftgate's
# plan ("run": its effect is unknown), and the gate is not part of the test's story.
GATE_TASKS = """\
    - name: applying (test gate)
      ansible.builtin.file: {{path: "{gate}/{{{{ environment_name }}}}.applying", state: touch, mode: "0644"}}
      vars: {{for_real: "{{{{ not ansible_check_mode }}}}"}}
      when: for_real | bool
    - name: wait for the test
      ansible.builtin.wait_for: {{path: "{gate}/{{{{ environment_name }}}}.release", timeout: 300}}
      vars: {{for_real: "{{{{ not ansible_check_mode }}}}"}}
      when: for_real | bool

"""


def block_apply_on(world: DemoWorld, gate: Path) -> None:
    """The demo playbook, with the two gate tasks first: apply stops before it
    changes anything (having touched ``gate/ENV.applying``) until ``gate/ENV.release``
    exists; a plan (check mode) skips them."""
    gate.mkdir(parents=True, exist_ok=True)
    playbook = (world.repo / "ansible/site.yml").read_text()
    playbook = playbook.replace("  tasks:\n", "  tasks:\n" + GATE_TASKS.format(gate=gate), 1)
    commit_change(world.repo, "ansible/site.yml", playbook, "test: apply waits for the test's gate file")


@contextmanager
def sync_process(
    world: DemoWorld | FilesWorld, env: dict[str, str], log: Path, *, host: str = ""
) -> Iterator[subprocess.Popen[str]]:
    """`driftgate sync demo --yes` in its own process; killed (its whole group) if the test fails.
    With ``host``, the process has that host name (a UTS namespace of its own): to
    driftgate, a run on another machine, whose process it cannot ask about."""
    on_host = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "sh"] if host else []
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*on_host, str(DRIFTGATE), "sync", "demo", "--config", str(world.config), "--yes"],
            env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


@contextmanager
def files_sync_held_in_apply(
    world: FilesWorld, tmp_path: Path, prefect_server: str, *, wait: str, host: str = ""
) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], Path]]:
    """alice's sync of the files kind (installed as a plugin for the processes: the
    slot is the subject, not Ansible), held mid-apply, with ``sync.wait`` ``wait``
    (and on ``host``, see `sync_process`). Yields its process, the environment for
    more syncs, and the hold directory (``demo.release`` there lets it go on)."""
    env = {"PREFECT_API_URL": f"{prefect_server}/api", "DRIFTGATE_USER": "alice", **as_installed_plugin(tmp_path / "plugins")}
    gate = tmp_path / "gate"
    world.hold_apply(gate)
    edit_config(world, sync={"wait": wait})
    log = tmp_path / "first-sync.log"
    with sync_process(world, env, log, host=host) as first:
        wait_for((gate / "demo.applying").exists, "the first sync reaches apply", proc=first, log=log)
        yield first, env, gate


def guard_logs(pids: set[int]) -> list[Path]:
    """The playbook guards' logs (driftgate.playbook_guard), found from their stand-ins' command lines."""
    stand_ins = {cmdline(p).split()[1] for p in pids if "/dg-cp-" in cmdline(p)}
    return [Path(s).parent.parent / GUARD_LOG for s in stand_ins]


def kill_mid_apply_then_sync(world: DemoWorld, tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float, set[str]]:
    """Start a sync, kill -9 it while it applies, then sync again right away.
    Returns the second sync, how long it took, and the command lines of the
    first sync's processes still alive after the kill (with the guard's log, if any)."""
    gate = tmp_path / "gate"
    block_apply_on(world, gate)
    log = tmp_path / "first-sync.log"
    home = Path(os.environ["DRIFTGATE_HOME"])
    # Unique across xdist workers: both tests' tmp_path names are cut to the same 30 characters.
    mark = uuid.uuid4().hex
    # A secret in the killed command's environment, as a team's record URL with its password would be.
    secret = f"postgresql://driftgate:pw-{mark}@db.internal/record"
    with sync_process(world, {**env, "DRIFTGATE_TEST_MARK": mark, "DRIFTGATE_TEST_SECRET": secret}, log) as first:
        wait_for((gate / "demo.applying").exists, "the first sync reaches apply", proc=first, log=log)
        # Kill while the wait_for module runs, in the worker Ansible detached with setsid
        # (not while Ansible's shell makes its file executable: that one ends at once).
        def running_module() -> list[str]:
            return [c for c in map(cmdline, marked(mark)) if "AnsiballZ_wait_for" in c and "chmod" not in c]

        wait_for(running_module, "the wait_for task runs", proc=first, log=log)
        # The module's file (it holds the task's arguments) is in the run's directory, not in ~/.ansible/tmp.
        modules = running_module()
        assert modules and all(f"{home}/runs/" in c for c in modules), modules
        logs = guard_logs(marked(mark))
        os.kill(first.pid, signal.SIGKILL)  # the command only, as `kill -9 PID` does
        first.wait(10)
    # What the kill leaves behind must go by itself (PR_SET_PDEATHSIG, hangup): wait for that, bounded.
    deadline = time.monotonic() + 15
    while marked(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = marked(mark)
    survivors = {cmdline(p) for p in left}
    if survivors:  # what the guard did, to say why
        survivors |= {f"guard log {log}: {log.read_text() if log.exists() else 'none'}" for log in logs}
    for pid in left:  # leave nothing running on the machine, whatever the result
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # The killed run's Ansible directory is left with it (ansible-runner writes the command's
    # environment into it), so the secret is on disk now: the premise of the check below.
    assert files_holding(home, [secret]), "the killed run left nothing holding its environment"
    (gate / "demo.release").touch()  # the second sync's apply passes the gate at once
    started = time.monotonic()
    # Bounded only so a hang fails the test: a temporary server alone has taken 90 s on this busy machine.
    second = run_cli("sync", "demo", "--config", str(world.config), "--yes", env=env, timeout=420)
    took = time.monotonic() - started
    # The next Ansible run deletes what a dead run left; nothing under the home holds the secret.
    assert files_holding(home, [secret]) == [], "a killed run's directory outlived it"
    assert list((home / "runs").iterdir()) == []
    return second, took, survivors


def assert_second_sync_took_over(second: subprocess.CompletedProcess[str], world: DemoWorld) -> None:
    assert second.returncode == 0, second.stdout + second.stderr
    assert "applied" in second.stdout
    runs = Store().history("demo")
    assert [r.outcome for r in runs] == [Outcome.APPLIED, Outcome.INTERRUPTED]
    assert "its process" in runs[1].reason and "ended before it recorded an outcome" in runs[1].reason
    assert world.config_line.read_text() == "max_connections = 100\n"


def test_killed_sync_frees_its_environment_on_a_prefect_server(world: DemoWorld, tmp_path: Path, prefect_server: str) -> None:
    env = {"PREFECT_API_URL": f"{prefect_server}/api"}
    second, took, survivors = kill_mid_apply_then_sync(world, tmp_path, env)
    assert survivors == set(), f"still running after the sync was killed: {survivors}"
    assert_second_sync_took_over(second, world)
    # The dead run's slot was freed: the second sync never waited for it (it says so when it does).
    assert "waiting for" not in second.stdout + second.stderr, f"the second sync waited ({took:.0f} s): {second.stdout}"
    # The dead run is not left "Running" in Prefect either.
    interrupted = Store().history("demo")[1]
    with client_of(prefect_server) as client:
        state = client.read_flow_run(interrupted.flow_run_id).state
    assert state is not None and state.type.value == "CRASHED", state


@pytest.mark.timeout(600)  # two temporary servers start, one per sync process
def test_killed_sync_frees_its_environment_on_the_temporary_server(world: DemoWorld, tmp_path: Path, prefect_templates: Path) -> None:
    home = tmp_path / "prefect-home"
    seed_prefect_database(prefect_templates, home / "prefect.db")  # the temporary servers', where PREFECT_HOME puts it
    env = {"PREFECT_HOME": str(home), "PREFECT_API_URL": ""}
    second, _took, survivors = kill_mid_apply_then_sync(world, tmp_path, env)
    assert survivors == set(), f"still running after the sync was killed: {survivors}"
    assert_second_sync_took_over(second, world)


@pytest.mark.timeout(600)  # a sync process held mid-apply and a second one beside it
def test_a_waiting_sync_says_for_whom_and_gives_up(files_world: FilesWorld, tmp_path: Path, prefect_server: str) -> None:
    world = files_world
    with files_sync_held_in_apply(world, tmp_path, prefect_server, wait="4s") as (first, env, gate):
        holder = Store().history("demo")  # nothing ended yet
        assert holder == []
        # Bounded only so a hang fails the test; how long it waited is read from its record below.
        second = run_cli("sync", "demo", "--config", str(world.config), "--yes", env={**env, "DRIFTGATE_USER": "bob"}, timeout=420)
        (gate / "demo.release").touch()
        first.wait(120)
    out = second.stdout + second.stderr
    assert second.returncode == 1, out
    assert "waiting for the sync of demo started by alice" in out, out
    assert "gave up after 4s" in out, out
    first_run, waiter = sorted(Store().history("demo"), key=lambda r: r.started_at)
    assert first_run.outcome == Outcome.APPLIED and first_run.requested_by == "alice"
    assert waiter.outcome == Outcome.FAILED and waiter.requested_by == "bob"
    assert waiter.failed_stage is not None and waiter.failed_stage.value == "queue"
    waited = (waiter.finished_at - waiter.started_at).total_seconds()  # the run's own time, not the process start-up
    assert 4 <= waited < 60, waited
    assert first_run.flow_run_id and first_run.flow_run_id in waiter.reason


@pytest.mark.timeout(600)  # a run's lease must run out: 60 s at least
def test_a_live_sync_elsewhere_marked_crashed_keeps_its_slot_until_its_lease_runs_out(
    files_world: FilesWorld, tmp_path: Path, prefect_server: str
) -> None:
    """deployments/dead-runs.yaml marks a run Crashed when its heartbeats stop. A live
    run's can stop too (its events lost or late) while it still renews its slot's lease:
    a Crashed state alone must not let a second sync of its environment apply beside it.
    The first sync runs "on another machine" (its own host name), so driftgate cannot
    ask its process; the automation's action is taken by the test, with the same API
    call (a forced Crashed state), since heartbeats cannot be stopped in a live run."""
    world = files_world
    with files_sync_held_in_apply(world, tmp_path, prefect_server, wait="5s", host="worker-elsewhere") as (first, env, gate):
        [held] = Store().runs_in_progress("demo")
        assert held.host == "worker-elsewhere"
        crash(prefect_server, held.flow_run_id)

        # Alive and renewing its lease: the next sync waits for it, and gives up.
        waiter = run_cli("sync", "demo", "--config", str(world.config), "--yes", env={**env, "DRIFTGATE_USER": "bob"}, timeout=300)
        out = waiter.stdout + waiter.stderr
        assert waiter.returncode == 1 and "gave up after 5s" in out, out
        assert "started by alice" in out, out
        assert not any(r.outcome == Outcome.INTERRUPTED for r in Store().history("demo")), "a live run recorded interrupted"

        # Now it dies: its lease runs out (60 s, taken back by the server within 15 s
        # more), and the next sync takes the slot and records it interrupted.
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(30)
    (gate / "demo.release").touch()
    edit_config(world, sync={"wait": "3m"})
    started = time.monotonic()
    taker = run_cli("sync", "demo", "--config", str(world.config), "--yes", env={**env, "DRIFTGATE_USER": "carol"}, timeout=420)
    took = time.monotonic() - started
    assert taker.returncode == 0, taker.stdout + taker.stderr
    outcomes = {r.requested_by: r.outcome for r in Store().history("demo")}
    assert outcomes == {"carol": Outcome.APPLIED, "alice": Outcome.INTERRUPTED, "bob": Outcome.FAILED}, outcomes
    assert took < 150, f"the dead run's lease took {took:.0f} s to run out"


def crash(prefect_server: str, flow_run_id: str | None) -> None:
    """What the dead-runs automation's action does: the flow run's state set Crashed, forced."""
    from prefect.states import Crashed

    assert flow_run_id
    with client_of(prefect_server) as client:
        client.set_flow_run_state(flow_run_id, Crashed(message="its heartbeats stopped (the test)"), force=True)


@pytest.mark.timeout(300)  # a sync process held mid-apply
def test_a_live_sync_marked_crashed_that_finishes_is_applied_and_completed(
    files_world: FilesWorld, tmp_path: Path, prefect_server: str
) -> None:
    """The dead-runs automation's Crashed state on a run that is in fact alive (its
    heartbeats late) is not its end: it applies, records applied, exits 0, and
    Prefect shows it Completed, as the record says, not Crashed."""
    def state_of(flow_run_id: str) -> Any:
        with client_of(prefect_server) as client:
            return client.read_flow_run(flow_run_id).state

    world = files_world
    with files_sync_held_in_apply(world, tmp_path, prefect_server, wait="5s") as (first, env, gate):
        [held] = Store().runs_in_progress("demo")
        assert held.flow_run_id
        crash(prefect_server, held.flow_run_id)
        assert state_of(held.flow_run_id).type.value == "CRASHED"  # as the automation leaves it
        (gate / "demo.release").touch()
        first.wait(120)
    assert first.returncode == 0, (tmp_path / "first-sync.log").read_text()[-3000:]
    [record] = Store().history("demo")
    assert record.outcome == Outcome.APPLIED and record.flow_run_id == held.flow_run_id
    final = state_of(held.flow_run_id)
    assert final is not None and final.is_completed(), final
