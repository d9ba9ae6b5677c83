"""The reconcile flow end to end on a Prefect test server: sync, no-op, drift,
failures recorded with their stage (approvals: tests/test_approval.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from driftgate.demo_repo import DemoWorld, commit_change
from driftgate.models import Outcome, Stage
from driftgate.store import Store, StoredRun
from tests.conftest import FAILS_ON_APPLY, add_tasks, as_cli, count_renders, edit_config

pytestmark = pytest.mark.usefixtures("prefect_api")


def sync(world: DemoWorld, *, requested_by: str | None = None, auto_approve: bool = False) -> tuple[Any, StoredRun]:
    """A sync as `driftgate sync [--yes]` by ``requested_by`` runs it."""
    from driftgate.flows.reconcile import reconcile

    with as_cli(requested_by, yes=auto_approve):
        state = reconcile(environment="demo", config=str(world.config), return_state=True)
    record = Store().history("demo", limit=1)[0]
    assert record.flow_run_id == str(state.state_details.flow_run_id)
    return state, record


def test_first_sync_then_no_op(world: DemoWorld) -> None:
    state, first = sync(world, requested_by="carol")
    assert state.is_completed(), state.message
    assert first.outcome == Outcome.APPLIED and first.mode.value == "sync"
    assert first.trigger == "cli" and first.requested_by == "carol"
    assert len(first.changes) == 3 and first.plan_hash
    assert first.hosts[0].host == "localhost" and first.hosts[0].changed == 3
    assert first.commit and first.repo == str(world.repo)
    assert world.config_line.read_text() == "max_connections = 100\n"

    state, second = sync(world)
    assert state.is_completed()
    assert second.outcome == Outcome.IN_SYNC and second.changes == [] and second.hosts == []
    assert second.commit == first.commit


def test_drift_detected_and_corrected(synced_world: DemoWorld) -> None:
    world = synced_world  # as after a first sync (test_first_sync_then_no_op runs one)
    world.config_line.write_text("max_connections = 5\n")
    state, record = sync(world)
    assert record.outcome == Outcome.APPLIED
    assert [c.name for c in record.changes] == ["connection limit"]
    assert world.config_line.read_text() == "max_connections = 100\n"


def test_unchanged_commit_is_not_rendered_again(world: DemoWorld, driftgate_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rendered = count_renders(monkeypatch, "ansible")
    first, _ = sync(world)
    world.config_line.write_text("max_connections = 1\n")
    _, record = sync(world)
    assert record.outcome == Outcome.APPLIED
    assert len(rendered) == 1  # the first sync's; the second reused its bundle
    assert len(list((driftgate_home / "renders").iterdir())) == 1


def test_failing_task_is_recorded_with_stage_and_reason(world: DemoWorld) -> None:
    add_tasks(world, "a task that fails on apply", FAILS_ON_APPLY)
    state, record = sync(world, auto_approve=True)  # skipped *because* of check mode: a risky `run`
    assert state.is_failed()
    assert ("run", "fails only for real", "failed") in [(c.action, c.name, c.result) for c in record.changes]
    assert record.outcome == Outcome.FAILED and record.failed_stage == Stage.APPLY
    assert "localhost: fails only for real: disk full on purpose" in record.reason
    assert record.hosts[0].failed == 1
    assert "apply" in state.message and "disk full on purpose" in state.message


def test_bad_ref_fails_at_fetch_and_is_recorded(world: DemoWorld) -> None:
    edit_config(world, source={"ref": "does-not-exist"})
    state, record = sync(world)
    assert state.is_failed()
    assert record.outcome == Outcome.FAILED and record.failed_stage == Stage.FETCH
    assert "ref 'does-not-exist' is not a branch, tag or commit" in record.reason
    assert not world.config_line.exists()


def test_empty_inventory_fails_at_render_nothing_applied(world: DemoWorld) -> None:
    commit_change(world.repo, "ansible/hosts.ini", "", "empty inventory")
    import yaml

    data = yaml.safe_load(world.config.read_text())
    target = data["environments"]["demo"]["target"]
    del target["hosts"]
    target["inventory"] = "hosts.ini"
    world.config.write_text(yaml.safe_dump(data))
    state, record = sync(world)
    assert record.failed_stage == Stage.RENDER and "names no hosts" in record.reason
    assert not world.config_line.exists()


def _task_run_counts(flow_run_id: str, *, expect: str = "fetch") -> dict[str, int]:
    """How often each task of the run ran, by task name, once ``expect`` is final on the server:
    the server records task-run states from events, after the flow has returned."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            if any(r.name.rsplit("-", 1)[0] == expect and r.state and r.state.is_final() for r in runs) or time.monotonic() > deadline:
                return {run.name.rsplit("-", 1)[0]: run.run_count for run in runs}
            time.sleep(0.2)


def test_transient_failures_are_retried_permanent_ones_are_not(world: DemoWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    from driftgate import retry

    waits: list[float] = []
    monkeypatch.setattr(retry, "_sleep", waits.append)  # keep the test fast; the waits are recorded
    # Nothing listens on loopback port 9: a real, transient connection failure.
    edit_config(world, source={"repo": "http://127.0.0.1:9/deploy.git"})
    state, record = sync(world)
    assert record.failed_stage == Stage.FETCH and "cannot fetch http://127.0.0.1:9/deploy.git" in record.reason
    assert "gave up after 3 attempts" in record.reason
    assert waits == [2.0, 8.0]  # retried in one layer, driftgate.retry ...
    assert _task_run_counts(record.flow_run_id)["fetch"] == 1  # ... not by Prefect on top of it

    waits.clear()
    edit_config(world, source={"repo": str(world.repo), "ref": "no-such-ref"})
    state, record = sync(world)
    assert record.failed_stage == Stage.FETCH
    assert waits == [] and _task_run_counts(record.flow_run_id)["fetch"] == 1
