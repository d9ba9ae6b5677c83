"""``driftgate wait RUN [--timeout S]``: block until a run ends, for scripts and CI.

Exit 0 when the run applied its plan (or found nothing to do), 1 when it
failed or was rejected (or cancelled, or is unknown), 3 when it had not ended
after ``--timeout`` seconds (the run goes on). Reads Prefect for the run's
state and the record for how it ended; imports Prefect lazily.
"""

from __future__ import annotations

import uuid

import typer
from rich.markup import escape

from driftgate.cli.common import EXIT_ERROR, EXIT_OK, EXIT_TIMEOUT, console, fail
from driftgate.cli.prefect_env import flow_run_url, prefect_defaults
from driftgate.cli.records import record_of

POLL_SECONDS = 2.0


def wait(
    run: str = typer.Argument(..., help="flow run id (as `driftgate sync` or `approvals` prints it), or an environment with one paused run"),
    timeout: float | None = typer.Option(None, "--timeout", help="give up after this many seconds: exit 3, the run goes on"),
) -> None:
    """Wait until a run ends. Exit 0 applied (or in sync), 1 failed, rejected or cancelled, 3 still running at --timeout."""
    from driftgate.cli.printing import print_run
    from driftgate.models import Outcome

    if timeout is not None and timeout < 0:
        fail(f"--timeout must be 0 or more seconds, not {timeout:g}")
    prefect_defaults()
    run_id = _run_id(run)
    state = _final_state(run_id, timeout)
    if state is None:
        console.print(f"run {run_id} has not ended after {timeout:g} s; it goes on (driftgate wait {run_id} to wait again)")
        raise typer.Exit(EXIT_TIMEOUT)
    record = record_of(run_id)
    url = flow_run_url(run_id)
    if record is None:
        console.print(f"run {run_id} ended {state.type.value} ({escape(state.name or '')}) without a record: {escape(state.message or '')}")
        raise typer.Exit(EXIT_ERROR)
    print_run(record)
    if url:
        console.print(f"[dim]Prefect UI: {url}[/]")
    raise typer.Exit(EXIT_OK if record.outcome in (Outcome.APPLIED, Outcome.IN_SYNC) else EXIT_ERROR)


def _run_id(ref: str) -> str:
    """A flow run id as given, or the one paused run of an environment."""
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        pass
    from driftgate.flows.approval import find_paused_run

    try:
        return find_paused_run(ref).id
    except LookupError as exc:
        fail(str(exc))


def _final_state(run_id: str, timeout: float | None):  # noqa: ANN202 - a Prefect State, imported lazily
    """The run's final state, or None when ``timeout`` seconds passed first."""
    from driftgate.flows.approvals_api import UnknownRun, final_state

    try:
        return final_state(run_id, timeout, poll_seconds=POLL_SECONDS)
    except UnknownRun:
        fail(f"no flow run {run_id} on {_server()} (see `driftgate history` or the Prefect UI)")


def _server() -> str:
    from driftgate.cli.prefect_env import api_description

    return api_description()
