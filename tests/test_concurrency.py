"""One sync per environment at a time; environments side by side."""

from __future__ import annotations

import contextvars
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftgate.demo_repo import DemoWorld

pytestmark = pytest.mark.usefixtures("prefect_api")


def _windows(flow_run_ids: list[str]) -> dict[str, tuple[datetime, datetime]]:
    """When each run did its work: from its first stage task's start to its last task's end."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    windows = {}
    with get_client(sync_client=True) as client:
        for run_id in flow_run_ids:
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
            work = [t for t in tasks if not t.name.startswith("record") and t.start_time and t.end_time]
            windows[run_id] = (min(t.start_time for t in work), max(t.end_time for t in work))
    return windows


def _run_together(world: DemoWorld, environments: list[str]) -> list[str]:
    from flows.reconcile import reconcile

    states: list[Any] = []
    barrier = threading.Barrier(len(environments))

    def one(environment: str) -> None:
        barrier.wait()
        states.append(reconcile(environment=environment, config=str(world.config), return_state=True))

    threads = [threading.Thread(target=contextvars.copy_context().run, args=(one, e)) for e in environments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    assert all(s.is_completed() for s in states), [s.message for s in states]
    return [str(s.state_details.flow_run_id) for s in states]


def test_two_syncs_of_one_environment_queue_two_environments_do_not(world: DemoWorld, tmp_path: Path) -> None:
    data = yaml.safe_load(world.config.read_text())
    other = {**data["environments"]["demo"]}
    other["target"] = {**other["target"], "vars": {"demo_root": str(tmp_path / "other-host"), "environment_name": "other"}}
    data["environments"]["other"] = other
    world.config.write_text(yaml.safe_dump(data))

    first, second = _windows(_run_together(world, ["demo", "demo"])).values()
    earlier, later = sorted([first, second])
    assert earlier[1] <= later[0], f"two syncs of one environment overlapped: {earlier} and {later}"

    world.config_line.unlink()
    (tmp_path / "other-host").mkdir()
    a, b = _windows(_run_together(world, ["demo", "other"])).values()
    assert a[0] < b[1] and b[0] < a[1], f"two environments did not run side by side: {a} and {b}"
