"""``driftgate suspend ENV --reason TEXT`` and ``driftgate resume ENV``: stop and
restart an environment's syncs, whoever would start them (a schedule, self-heal,
the Prefect UI, the CLI); drift checks go on. Both are appended to the record
(`Store.suspend`, `Store.resume`); the reconcile flow asks `driftgate.sync_guard`.
No Prefect: they answer at once."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from driftgate.cli.common import ConfigOption, console, fail, validated_config_path
from driftgate.cli.records import record_errors, store


def suspend(
    environment: str = typer.Argument(..., help="environment name from driftgate.yaml"),
    reason: str = typer.Option(..., "--reason", help="why: shown to whoever tries to sync it, and kept in the record"),
    config: Path | None = ConfigOption,
) -> None:
    """Suspend ENV's syncs until `driftgate resume ENV` (drift checks go on). Exit 0 suspended, 1 error or already suspended."""
    from driftgate.runlog import current_user

    validated_config_path(config, environment)  # only an environment of driftgate.yaml: a typo must not suspend nothing
    if not reason.strip():
        fail("--reason must say why the environment is suspended")
    with record_errors():  # already suspended, too: one line, exit 1
        done = store().suspend(environment, reason=reason.strip(), by=current_user())
    console.print(f"{escape(environment)} is {escape(done.describe())}: no sync of it runs until driftgate resume {escape(environment)}")


def resume(
    environment: str = typer.Argument(..., help="environment name from driftgate.yaml"),
    reason: str = typer.Option("", "--reason", help="why (kept in the record)"),
    config: Path | None = ConfigOption,
) -> None:
    """Let ENV sync again after `driftgate suspend`. Exit 0 resumed, 1 error or not suspended."""
    from driftgate.runlog import current_user

    validated_config_path(config, environment)
    with record_errors():  # not suspended, too
        ended = store().resume(environment, reason=reason.strip(), by=current_user())
    console.print(f"{escape(environment)} may sync again (it was {escape(ended.describe())})")

