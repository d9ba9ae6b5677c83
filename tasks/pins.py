"""Where a sync goes, and the pin it leaves: thin tasks around `driftgate.revisions`.

`destination` reads the record (the environment's pin, its runs for a rollback
or a promotion) and says which commit the run fetches; `pin_after` holds the
environment there once a revision asked for, a rollback or a promotion has
applied healthy. Called by the reconcile flow (and `destination` by the drift check).
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from driftgate import revisions
from driftgate.config import Environment
from driftgate.models import RunRecord
from driftgate.store import Store
from driftgate.store.records import Pin

_common: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False, "retries": 0}


def _store() -> Store:
    from driftgate.blocks import record_database_url

    return Store(record_database_url())


@task(name="destination", **_common)
def destination(env: Environment, request: Any) -> revisions.Destination:
    """The commit this run goes to: ``request`` is the run's `RunRequest` (purpose, revision, reason)."""
    return revisions.destination(
        _store(), env, purpose=request.purpose, revision=request.revision, reason=request.reason
    )


@task(name="pin", **_common)
def pin_after(going: revisions.Destination, record: RunRecord, *, by: str) -> Pin | None:
    return revisions.pin_after(_store(), record, going, by=by)
