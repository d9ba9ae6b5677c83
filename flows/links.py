"""Links from the record and notifications to the run's page in the Prefect UI, and its name there.

`prefect.runtime.flow_run.ui_url` points at /flow-runs/flow-run/ID, a page
the UI does not have; `url_for` builds the UI's own /runs/flow-run/ID.
"""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.utilities.urls import url_for


def this_run_url() -> str | None:
    """The current flow run's page in the Prefect UI (None without a UI URL)."""
    return url_for("flow-run", obj_id=flow_run.id) if flow_run.id else None


def name_this_run(name: str) -> None:
    """Rename the current flow run, as the UI's run list shows it (``rollback web@9f8e7d6``):
    a rollback's or promotion's commit is known only once it has been fetched."""
    if flow_run.id:
        with get_client(sync_client=True) as client:
            client.update_flow_run(UUID(flow_run.id), name=name)
