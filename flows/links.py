"""Links from the record and notifications to the run's page in the Prefect UI.

`prefect.runtime.flow_run.ui_url` points at /flow-runs/flow-run/ID, a page
the UI does not have; `url_for` builds the UI's own /runs/flow-run/ID.
"""

from __future__ import annotations

from prefect.runtime import flow_run
from prefect.utilities.urls import url_for


def this_run_url() -> str | None:
    """The current flow run's page in the Prefect UI (None without a UI URL)."""
    return url_for("flow-run", obj_id=flow_run.id) if flow_run.id else None
