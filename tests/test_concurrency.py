"""One sync per environment at a time; environments side by side.

Asserted on the slot itself, not on timing: while a sync of ``demo`` is held
mid-apply (it waits for a file the test creates), a second sync of ``demo``
waits for the slot and says so, and a sync of ``other`` reaches its own apply.
The target is the test-only kind ``files`` (tests/filestarget.py); a killed
Ansible apply is tests/test_locks.py's.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftgate.store import Store
from tests.conftest import edit_config
from tests.filestarget import FilesWorld, world_on_files  # noqa: F401  (fixtures: world on the files kind)
from tests.processes import wait_for

pytestmark = pytest.mark.usefixtures("prefect_api")



def _in_thread(world: FilesWorld, environment: str, states: list[Any]) -> threading.Thread:
    from driftgate.flows.reconcile import reconcile

    def one() -> None:
        states.append(reconcile(environment=environment, config=str(world.config), return_state=True))

    thread = threading.Thread(target=contextvars.copy_context().run, args=(one,))
    thread.start()
    return thread


def _logged(flow_run_id: str, text: str) -> Callable[[], bool]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    def check() -> bool:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        return any(text in log.message for log in logs)

    return check


def _work_window(flow_run_id: str) -> tuple[datetime, datetime]:
    """When a run did its work under the slot: from its first stage task's start
    to its last one's end (the record tasks are outside the slot)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    work = [t for t in tasks if not t.name.startswith("record") and t.start_time and t.end_time]
    return min(t.start_time for t in work), max(t.end_time for t in work)


def test_two_syncs_of_one_environment_queue_two_environments_do_not(world: FilesWorld, tmp_path: Path) -> None:
    edit_config(world, approval={"mode": "never"})
    data = yaml.safe_load(world.config.read_text())
    other = {**data["environments"]["demo"]}
    other["target"] = {**other["target"], "directory": str(tmp_path / "other-live")}
    data["environments"]["other"] = other
    world.config.write_text(yaml.safe_dump(data))
    gate = tmp_path / "gate"
    world.hold_apply(gate, "demo")
    world.hold_apply(gate, "other")

    states: list[Any] = []
    threads = [_in_thread(world, "demo", states)]
    try:
        wait_for((gate / "demo.applying").exists, "the first sync of demo reaches apply")
        threads.append(_in_thread(world, "demo", states))
        wait_for(lambda: len(Store().runs_in_progress("demo")) == 2, "the second sync of demo starts")
        first, second = Store().runs_in_progress("demo")
        wait_for(_logged(str(second.flow_run_id), "demo: waiting for the sync of demo started by"), "the second sync waits")
        assert not [r for r in Store().history("demo")], "nothing of demo has ended while the first holds the slot"

        threads.append(_in_thread(world, "other", states))  # not held up by demo's slot
        wait_for((gate / "other.applying").exists, "the sync of other reaches apply while demo's first sync holds its slot")
        assert not (gate / "demo.release").exists()
    finally:
        for name in ("demo", "other"):
            (gate / f"{name}.release").touch()
        for thread in threads:
            thread.join(180)
    assert len(states) == 3 and all(s.is_completed() for s in states), [s.message for s in states]
    earlier, later = _work_window(str(first.flow_run_id)), _work_window(str(second.flow_run_id))
    assert earlier[1] <= later[0], f"two syncs of one environment overlapped: {earlier} and {later}"
