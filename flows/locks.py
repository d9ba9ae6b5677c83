"""One sync per environment at a time, whoever starts it.

A Prefect global concurrency limit named ``driftgate-sync-<env>`` with one
slot: scheduled, manual (UI) and CLI syncs of one environment queue behind
each other, while other environments and read-only drift checks run beside
them. Used by the reconcile flow around fetch..apply.
"""

from __future__ import annotations

from contextlib import AbstractContextManager

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound


def limit_name(environment: str) -> str:
    return f"driftgate-sync-{environment}"


def one_sync_at_a_time(environment: str) -> AbstractContextManager[None]:
    """Hold the environment's sync slot (waiting for it if another sync has it)."""
    name = limit_name(environment)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:  # another run created it first
                pass
    # strict: without the limit, concurrency() would silently not serialise anything.
    return concurrency(name, occupy=1, strict=True)
