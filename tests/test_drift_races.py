"""A drift check does not lie: a check while a sync of the environment applies
is skipped (a half-applied state is not drift), and a check that crashes is
recorded as failed with its stage, not later as "interrupted". The target is
the test-only kind ``files`` (tests/filestarget.py)."""

from __future__ import annotations

import contextvars
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from driftgate.models import Outcome, RunPurpose, Stage
from driftgate.store import Store
from tests.conftest import edit_config
from tests.filestarget import FilesWorld, world_on_files  # noqa: F401  (fixtures: world on the files kind)
from tests.processes import wait_for

pytestmark = pytest.mark.usefixtures("prefect_api")



def check(world: FilesWorld) -> tuple[Any, Any]:
    from driftgate.flows.drift import drift_check

    state = drift_check(environment="demo", config=str(world.config), return_state=True)
    runs = [r for r in Store().history("demo", limit=10) if r.purpose == RunPurpose.DRIFT]
    return state, runs[0]


def test_a_drift_check_during_a_sync_is_skipped_not_drift(world: FilesWorld, tmp_path: Path) -> None:
    from driftgate.flows.reconcile import reconcile

    edit_config(world, approval={"mode": "never"})
    gate = tmp_path / "gate"
    world.hold_apply(gate)  # the sync stops at the start of apply, nothing changed yet
    states: list[Any] = []

    def sync() -> None:
        states.append(reconcile(environment="demo", config=str(world.config), return_state=True))

    thread = threading.Thread(target=contextvars.copy_context().run, args=(sync,))
    thread.start()
    try:
        wait_for((gate / "demo.applying").exists, "the sync reaches apply")
        state, record = check(world)
    finally:
        (gate / "demo.release").touch()
        thread.join(180)
    assert states and states[0].is_completed(), states
    assert state.is_completed() and state.name == "Skipped", state
    assert record.outcome == Outcome.SKIPPED and record.changes == []
    assert "a sync of demo is running" in record.reason and "started by" in record.reason
    assert Store().drift_events("demo") == []

    state, record = check(world)  # the sync is done: a check finds the environment in sync
    assert record.outcome == Outcome.IN_SYNC, record.reason


def test_a_crashed_drift_check_is_recorded_as_failed_with_its_stage(world: FilesWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    # Injected: every engine failure a configuration or a target could cause
    # here (a kubeconfig that is a list, API faults, an unreachable host) is a
    # DriftgateError already; this stands for the bug nobody has found yet.
    from driftgate import targets

    def broken_plan(*_: Any, **__: Any) -> None:
        raise KeyError("spec")

    monkeypatch.setattr(targets, "plan", broken_plan)
    state, record = check(world)
    assert state.is_failed(), state
    assert record.outcome == Outcome.FAILED and record.failed_stage == Stage.DIFF
    assert record.reason == "KeyError: 'spec'"
    monkeypatch.undo()
    check(world)  # the next start finds nothing unfinished to mark interrupted
    assert [r.outcome for r in Store().history("demo") if r.outcome == Outcome.INTERRUPTED] == []


def test_a_drift_check_that_crashes_in_render_is_recorded_as_failed_at_render(world: FilesWorld, driftgate_home: Path) -> None:
    # A real fault, nothing mocked: the folder that render caches bundles in is
    # a file, so render's own mkdir raises FileExistsError, an OSError that no
    # engine code turns into a DriftgateError: the kind of crash a bug causes.
    renders = driftgate_home / "renders"
    shutil.rmtree(renders, ignore_errors=True)
    renders.parent.mkdir(parents=True, exist_ok=True)
    renders.write_text("not a folder")
    state, record = check(world)
    assert state.is_failed(), state  # a bug fails the flow run where people look
    assert record.outcome == Outcome.FAILED and record.failed_stage == Stage.RENDER, (record.failed_stage, record.reason)
    assert record.reason.startswith("FileExistsError: "), record.reason
    assert record.commit  # fetch had finished: the record keeps what it found
    renders.unlink()
    state, record = check(world)  # the next start finds nothing unfinished to mark interrupted
    assert record.outcome == Outcome.DRIFT, record.reason
    assert [r.outcome for r in Store().history("demo") if r.outcome == Outcome.INTERRUPTED] == []
