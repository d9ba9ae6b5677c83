"""Moving an environment off its ref's head and back: ``rollback``, ``promote``
and ``unpin`` (``sync --revision`` is in `driftgate.cli.runs`).

``rollback`` and ``promote`` run the reconcile flow like ``sync`` (Prefect is
imported lazily, a temporary server started without ``PREFECT_API_URL``);
where they go is worked out inside the run (`driftgate.revisions`), so a
refusal is recorded like any failed run. ``unpin`` only writes the record.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from driftgate.cli.common import ConfigOption, console, fail, validated_config_path
from driftgate.cli.records import store
from driftgate.cli.runs import Request, VerboseOption, run_reconcile

_YES = typer.Option(
    False, "--yes", "-y", help="approve, as you, the plan that waits (the environment's approver rules still apply; recorded)"
)


def rollback(
    environment: str = typer.Argument(..., help="environment name from driftgate.yaml"),
    to: str | None = typer.Option(
        None, "--to", help="a run (record id, run id, flow run id) or a revision (branch, tag, commit) to go back to"
    ),
    reason: str = typer.Option("", "--reason", help="why; kept with the pin (driftgate status)"),
    config: Path | None = ConfigOption,
    yes: bool = _YES,
    verbose: bool = VerboseOption,
) -> None:
    """Sync ENV back to the commit of its last run that applied and ended healthy (or --to RUN|REV).

    Always waits for approval (like a risky plan), records the run as kind
    rollback with the commit it rolled back from, and pins ENV there until
    `driftgate unpin ENV`. Exit 0 rolled back (or already there), 1 refused,
    rejected or failed."""
    from driftgate.models import RunPurpose

    config_path = validated_config_path(config, environment)
    asked = Request(pre_approve=yes, purpose=RunPurpose.ROLLBACK, revision=to, reason=reason)
    run_reconcile(environment, config_path, asked, verbose=verbose, what="rollback")


def promote(
    environment: str = typer.Argument(..., help="the environment to promote into (it names promote_from)"),
    config: Path | None = ConfigOption,
    yes: bool = _YES,
    verbose: bool = VerboseOption,
) -> None:
    """Sync ENV to the commit its promote_from environment has run healthy for promote_from.after.

    Goes through ENV's own gate; the record links the run to the source
    environment's run, and ENV is pinned there. Exit 0 promoted (or already
    there), 1 refused (nothing healthy long enough, or the commit is not
    reachable from ENV's ref), rejected or failed."""
    from driftgate.models import RunPurpose

    config_path = validated_config_path(config, environment)
    run_reconcile(environment, config_path, Request(pre_approve=yes, purpose=RunPurpose.PROMOTE), verbose=verbose, what="promotion")


def unpin(
    environment: str = typer.Argument(..., help="environment name from driftgate.yaml"),
    reason: str = typer.Option("", "--reason", help="why; kept in the record"),
    config: Path | None = ConfigOption,
) -> None:
    """Let ENV follow its ref's head again (its next sync moves it there). Exit 0 unpinned, 1 not pinned or error."""
    from driftgate.runlog import current_user

    validated_config_path(config, environment)
    record = store()
    pin = record.pin_of(environment)
    if pin is None:
        fail(f"environment {environment!r} is not pinned: its syncs follow its ref")
    record.unpin(environment, by=current_user(), reason=reason)
    console.print(
        f"unpinned {escape(environment)} (was {pin.commit[:12]}, pinned by {escape(pin.set_by)}); "
        "its next sync goes to its ref's head"
    )
