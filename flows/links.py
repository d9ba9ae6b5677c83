"""Links from the record and notifications to the run's page in the Prefect UI,
and the run's name there.

`prefect.runtime.flow_run.ui_url` points at /flow-runs/flow-run/ID, a page
the UI does not have; `url_for` builds the UI's own /runs/flow-run/ID.
`name_this_run` renames a run once its commit is known: `sync web@d5ae9cb`;
`tag_this_run` gives a run started outside a deployment the tags a
deployment's run carries.
"""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from prefect.utilities.urls import url_for


def this_run_url() -> str | None:
    """The current flow run's page in the Prefect UI (None without a UI URL)."""
    return url_for("flow-run", obj_id=flow_run.id) if flow_run.id else None


def name_this_run(purpose: str, environment: str, commit: str) -> None:
    """Name the current flow run ``PURPOSE ENV@COMMIT`` (its name at start has no commit
    yet). A name is for people: a server that refuses it is logged, the run goes on."""
    from prefect import get_run_logger

    if not (flow_run.id and commit):
        return
    name = f"{purpose} {environment}@{commit[:7]}"
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(UUID(flow_run.id), name=name)
    except Exception as exc:  # noqa: BLE001 - e.g. the API briefly unreachable: the run must not fail for its name
        get_run_logger().warning("could not name the run %r: %s", name, exc)


def tag_this_run(tags: list[str]) -> None:
    """Add ``tags`` to the current flow run where it lacks them (a run of the CLI, a
    self-heal or promotion subflow; a deployment's run has them already: no call).

    On the flow run alone: inside Prefect's ``tags()`` context every task run would
    carry them too, and a tagged task run asks the server for tag concurrency
    slots, two more API calls per task. Tags are for people: a refusal is logged."""
    from prefect import get_run_logger
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return
    have = list(context.flow_run.tags or [])
    missing = [tag for tag in tags if tag not in have]
    if not missing:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(context.flow_run.id, tags=have + missing)
    except Exception as exc:  # noqa: BLE001 - e.g. the API briefly unreachable: the run must not fail for its tags
        get_run_logger().warning("could not tag the run with %s: %s", missing, exc)
