"""Where a sync goes, and the pin it leaves: thin tasks around `driftgate.revisions`.

`destination` reads the record (the environment's pin, its runs for a rollback
or a promotion) and says which commit the run fetches; `pin_after` holds the
environment there once a revision asked for, a rollback or a promotion has
applied healthy. Called by the reconcile flow (and `destination` by the drift check).
"""

from __future__ import annotations

from typing import Any

from prefect import task

from driftgate import revisions
from driftgate.config import Environment
from driftgate.models import RunRecord
from driftgate.store import Store
from driftgate.store.records import Pin
from driftgate.tasks.stages import TASK_SETTINGS


def _store() -> Store:
    from driftgate.blocks import record_database_url

    return Store(record_database_url())


@task(name="destination", **TASK_SETTINGS)
def destination(env: Environment, request: Any) -> revisions.Destination:
    """The commit this run goes to: ``request`` is the run's `RunRequest` (purpose, revision, reason)."""
    return revisions.destination(
        _store(), env, purpose=request.purpose, revision=request.revision, reason=request.reason
    )


@task(name="pin", **TASK_SETTINGS)
def pin_after(going: revisions.Destination, record: RunRecord, *, by: str) -> Pin | None:
    return revisions.pin_after(_store(), record, going, by=by)
