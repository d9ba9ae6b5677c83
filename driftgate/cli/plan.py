"""``driftgate plan ENV``: the read-only pipeline (driftgate.pipeline) on the engine's
own stages, without Prefect, so it answers in a few seconds.

Exit 0 in sync, 2 changes pending, 1 error; ``--output json`` holds
environment, revision, plan_hash and changes. ``--revision`` plans another
branch, tag or commit; a pinned environment is planned at its pin. ``--out
FILE`` saves the plan for ``sync --plan FILE`` (driftgate.savedplan). Every
plan, failed too, ends in the record.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from driftgate.cli.common import EXIT_CHANGES, EXIT_OK, ConfigOption, OutputOption, check_output, err_console, fail
from driftgate.cli.prefect_env import load_access
from driftgate.cli.records import record_errors, store

if TYPE_CHECKING:
    from driftgate.errors import TransientError
    from driftgate.models import Plan


def plan(
    environment: str = typer.Argument(..., help="environment name from driftgate.yaml"),
    config: Path | None = ConfigOption,
    output: str = OutputOption,
    revision: str | None = typer.Option(
        None, "--revision", "-r", help="plan this branch, tag or commit instead of the ref (or the environment's pin)"
    ),
    out: Path | None = typer.Option(
        None, "--out", help="also save the plan to this file, for `driftgate sync ENV --plan FILE` (applies it only while it holds)"
    ),
) -> None:
    """Show what a sync would change (read-only). Exit 0 in sync, 2 changes pending, 1 error.

    A pinned environment is planned at its pin; --revision plans any branch, tag or commit."""
    # The engine, here rather than at the top: every other command (and --help) goes without it.
    from driftgate import revisions, targets
    from driftgate.cli.printing import plan_json, print_plan
    from driftgate.config import load_config
    from driftgate.errors import ConfigError
    from driftgate.models import RunPurpose, Trigger
    from driftgate.pipeline import Pipeline, engine_stages
    from driftgate.runlog import RunLog

    check_output(output)
    try:
        env = load_config(config).environment(environment)
    except ConfigError as exc:  # nothing ran: an invalid file is no run of any environment
        fail(str(exc), output=output, problems=exc.problems)
    run = RunLog(environment, purpose=RunPurpose.PLAN, trigger=Trigger.CLI.value)
    stages = engine_stages(
        access=load_access, record=lambda record: store().record(record), on_retry=say_retry,
        applied=lambda name: store().last_applied_revision(name),
    )  # fmt: skip
    pipeline = Pipeline(run, stages)
    with pipeline.recorded():  # a bug is still recorded, then shown with its traceback
        access = pipeline.access(env)
        going = revisions.destination(store(), env, revision=revision)  # as a sync would go: revision, pin or ref
        going.note(run)
        pipeline.aim = going.aim
        _, run.plan = pipeline.plan(env, access)
    with record_errors(output):
        record, _ = pipeline.finish()
    result = run.plan
    if result is None:
        fail(record.reason, output=output, environment=environment, stage=record.failed_stage and record.failed_stage.value)
    if output == "json":
        print(json.dumps(plan_json(result, ref=record.ref), indent=2))
    else:
        print_plan(result, targets.target_for(env), ref=record.ref)
    if out is not None:
        save_plan(result, out, ref=record.ref, output=output, pinned=revision is not None)
    raise typer.Exit(EXIT_OK if result.in_sync else EXIT_CHANGES)


def say_retry(attempt: int, seconds: float, error: TransientError) -> None:
    """The one retry budget (driftgate.retry), said on stderr as it happens."""
    from driftgate import retry

    err_console.print(f"[yellow]attempt {attempt} of {retry.ATTEMPTS} failed, trying again in {seconds:.0f} s:[/] {escape(str(error))}")


def save_plan(result: Plan, out: Path, *, ref: str, output: str, pinned: bool) -> None:
    """``--out``: the plan as `driftgate.savedplan` writes it (masked, as printed)."""
    from driftgate import savedplan
    from driftgate.runlog import current_user, now

    try:
        out.write_text(savedplan.dump(result, ref=ref, saved_by=current_user(), saved_at=now(), pinned=pinned))
    except OSError as exc:
        fail(f"cannot save the plan to {out}: {exc.strerror or exc}", output=output)
    err_console.print(f"saved plan {result.plan_hash[:12]} to {escape(str(out))}: driftgate sync {escape(result.environment)} --plan {escape(str(out))}")
