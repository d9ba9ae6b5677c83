"""The task that asks whether a sync may run now (driftgate.sync_guard): the
environment's suspension, from the record, and its sync windows. Run by the
reconcile flow before fetch and again right before apply."""

from __future__ import annotations

from prefect import get_run_logger, task

from driftgate import sync_guard
from driftgate.config import Environment
from driftgate.store import Store
from driftgate.tasks.stages import TASK_SETTINGS  # the options every driftgate task takes


@task(name="sync allowed", **TASK_SETTINGS)
def sync_allowed(env: Environment, *, trigger: str, override_window: bool) -> sync_guard.Verdict:
    from driftgate.blocks import record_database_url

    suspension = Store(record_database_url()).suspension(env.name)
    verdict = sync_guard.decide(env, suspension, trigger=trigger, override_window=override_window)
    if verdict.reason:
        get_run_logger().warning("%s", verdict.reason)
    return verdict
