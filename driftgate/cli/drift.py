"""``driftgate drift``: drift-check many environments in one flow run (flows/fleet.py).

One Prefect start-up and one process check them all, ``--concurrency`` at a
time; each environment gets its own record entry, drift event, status and
notification, as from its own drift check. Exit codes as `driftgate status`:
0 every environment checked is in sync (or skipped), 2 any drifted, 1 any
unknown or failed (or bad input).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from driftgate.cli.common import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, ConfigOption, OutputOption, check_output, console, fail, load_or_fail
from driftgate.cli.prefect_env import api_description, flow_run_url, prefect_defaults, prefect_server
from driftgate.cli.records import record_errors, store

if TYPE_CHECKING:
    from driftgate.store import StoredRun


def drift(
    environments: list[str] | None = typer.Argument(None, help="environments to check (or --all)"),
    all_environments: bool = typer.Option(False, "--all", "-a", help="check every environment of driftgate.yaml"),
    concurrency: int = typer.Option(4, "--concurrency", "-j", min=1, max=64, help="environments checked at a time"),
    config: Path | None = ConfigOption,
    output: str = OutputOption,
) -> None:
    """Drift-check ENV... (or --all) in one flow run, read-only. Exit 0 all in sync, 2 any drifted, 1 any unknown or failed."""
    from driftgate.cli.printing import outcome_text
    from driftgate.errors import ConfigError
    from driftgate.models import Outcome

    check_output(output)
    if bool(environments) == all_environments:
        fail("name the environments to check, or give --all (not both)", output=output)
    cfg = load_or_fail(config)
    names = sorted(cfg.environments) if all_environments else list(dict.fromkeys(environments or []))
    for name in names:
        try:
            cfg.environment(name)
        except ConfigError as exc:  # an unknown environment, named with the known ones
            fail(str(exc), output=output)
    prefect_defaults()
    if output == "text":
        console.print(f"[dim]checking {len(names)} environment(s), {concurrency} at a time, on {api_description()}…[/]")
    with prefect_server():  # before Prefect is imported: it reads PREFECT_API_URL once
        from driftgate.flows.fleet import drift_fleet
        from driftgate.flows.requests import cli_request, requested

        with requested(cli_request()):
            state = drift_fleet(environments=names, config=str(cfg.path), concurrency=concurrency, return_state=True)
    flow_run_id = str(state.state_details.flow_run_id or "")
    with record_errors(output):
        records = {name: _this_runs_check(name, flow_run_id) for name in names}
    outcomes = [r.outcome if r else Outcome.FAILED for r in records.values()]
    if output == "json":
        print(json.dumps({"flow_run_id": flow_run_id, "state": state.name, "message": state.message, "environments": [
            {"environment": name, "outcome": r.outcome.value if r else None, "record": r.id if r else None,
             "reason": r.reason if r else "no record of this check (see the flow run)"}
            for name, r in records.items()
        ]}, indent=2))  # fmt: skip
    else:
        for name, r in records.items():
            shown = f"{outcome_text(r.outcome)} #{r.id}" if r else "[red]no record[/]"
            console.print(f"{escape(name)}: {shown} {escape(r.reason if r else '')}".rstrip())
        url = flow_run_url(flow_run_id)
        console.print(f"[dim]{escape(state.message or state.name)}" + (f"; Prefect UI: {url}" if url else "") + "[/]")
    if any(o == Outcome.FAILED for o in outcomes):
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_CHANGES if Outcome.DRIFT in outcomes else EXIT_OK)


def _this_runs_check(environment: str, flow_run_id: str) -> StoredRun | None:
    """The drift record this flow run left for ``environment`` (None: none, e.g. it crashed before its start)."""
    from driftgate.models import RunPurpose

    for run in store().history(environment, limit=20):
        if run.flow_run_id == flow_run_id and run.purpose == RunPurpose.DRIFT:
            return run
    return None
