"""The record as the commands open it: the store (from a block when
$DRIFTGATE_DATABASE_BLOCK names one), and its errors as one line."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from driftgate.cli.common import fail
from driftgate.cli.prefect_env import prefect_defaults

if TYPE_CHECKING:
    from driftgate.store import Store, StoredRun


def store() -> Store:
    """The record; from a block when $DRIFTGATE_DATABASE_BLOCK names one (needs the Prefect API)."""
    from driftgate.store import Store

    with record_errors():
        if os.environ.get("DRIFTGATE_DATABASE_BLOCK"):
            prefect_defaults()
            from driftgate.blocks import record_database_url

            return Store(record_database_url())
        return Store()


@contextmanager
def record_errors(output: str = "text") -> Iterator[None]:
    """The record cannot be opened, read or written (locked beyond its budget,
    unreachable, a newer schema): one line and exit 1, not a traceback."""
    from driftgate.errors import DriftgateError

    try:
        yield
    except DriftgateError as exc:
        fail(str(exc), output=output)


def record_of(flow_run_id: str | None) -> StoredRun | None:
    """The recorded run of a Prefect flow run."""
    return store().for_flow_run(flow_run_id) if flow_run_id else None
