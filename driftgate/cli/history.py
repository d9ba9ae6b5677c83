"""Reading the record: ``history``, ``show``, ``audit verify`` and ``audit export``.

They read the store directly (no Prefect, unless the record's database comes
from a block; no Alembic when the record's schema is current; GitPython only
for ``show`` of a run with a commit), so they answer in about a second.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from driftgate.cli.common import EXIT_ERROR, EXIT_OK, OutputOption, check_output, console, err_console, fail
from driftgate.cli.records import record_errors, store

if TYPE_CHECKING:
    from driftgate.models import CommitRange
    from driftgate.store import StoredRun


def history(
    environment: str | None = typer.Argument(None, help="only this environment"),
    since: str | None = typer.Option(None, help="only runs started at or after this date (UTC)"),
    commit: str | None = typer.Option(None, help="only runs of this commit (a SHA prefix)"),
    approver: str | None = typer.Option(None, help="only runs approved or rejected by this person"),
    output: str = OutputOption,
    limit: int = typer.Option(20, help="at most this many runs (0: all)"),
) -> None:
    """Recorded runs, the latest started first; says when --limit left some out."""
    from driftgate.cli.printing import print_history

    check_output(output)
    if limit < 0:
        fail(f"--limit must be 0 (all) or more, not {limit}", output=output)
    with record_errors(output):
        # One more than asked: whether --limit cut the list off.
        runs = store().history(environment, limit=limit + 1 if limit else None, since=_when(since, "--since"), commit=commit, approver=approver)
    cut = bool(limit) and len(runs) > limit
    runs = runs[:limit] if limit else runs
    if output == "json":
        print(json.dumps([r.model_dump(mode="json") for r in runs], indent=2))
        if cut:
            err_console.print(f"the latest {limit} runs; more match: --limit 0 lists them all")
        return
    filters = [f"{name} {value}" for name, value in (("since", since), ("commit", commit), ("approver", approver)) if value]
    if not runs:
        where = f" for {escape(environment)}" if environment else ""
        console.print(f"no runs match{where}: {escape(', '.join(filters))}" if filters else f"no runs recorded yet{where}")
        return
    print_history(runs)
    if cut:
        console.print(f"[dim]the latest {limit} runs by start; more match: --limit N for more, --limit 0 for all[/]")


def show(
    run: str = typer.Argument(..., help="record id (#), run id, or Prefect flow-run id"),
    output: str = OutputOption,
) -> None:
    """One recorded run in full: who, what, where, when, approval, result, every change with its diff."""
    from driftgate.cli.printing import print_stored_run

    check_output(output)
    with record_errors(output):
        found = store().get(run)
    if found is None:
        fail(f"no run {run!r} in the record (see `driftgate history`)", output=output)
    with record_errors(output):
        story = _commits_of(found)
    if output == "json":
        print(json.dumps({**found.model_dump(mode="json"), "commits": story and story.model_dump(mode="json")}, indent=2))
        return
    print_stored_run(found, commits=story)


def _commits_of(run: StoredRun) -> CommitRange | None:
    """The commits between what was applied before this run and its commit, from
    the mirror clone (None when it is not on this machine, or the run has no commit)."""
    if not run.commit or not run.repo:
        return None
    from driftgate import commits  # GitPython: only for a run with a commit
    from driftgate.models import Outcome

    earlier = store().history(run.environment, limit=None, until=run.started_at)
    since = next((r.commit for r in earlier if r.outcome == Outcome.APPLIED and r.id != run.id), "")
    return commits.between(run.repo, since, run.commit)


TrustedKeysOption = typer.Option(
    None, "--trusted-keys", help="public keys (or allowed_signers lines) the checkpoints must be signed by; default: the instance key"
)


def audit_verify(
    output: str = OutputOption,
    bundle: Path | None = typer.Option(None, "--bundle", help="verify this bundle (from `audit export --bundle`) instead; no database needed"),
    trusted_keys: Path | None = TrustedKeysOption,
) -> None:
    """Walk the record's hash chain and compare it with its signed checkpoints.

    Names the first row altered, removed or inserted, and what the checkpoints
    show: rows cut from the end, a chain recomputed from some row on, a database
    deleted and started anew; re-verifies every signed approval offline.
    Exit 0 intact, 1 not.
    """
    from driftgate import bundle as bundles
    from driftgate import checkpoints
    from driftgate.cli.printing import print_report

    check_output(output)
    with record_errors(output):
        trusted = _trusted_keys(trusted_keys)
        if bundle is not None:
            report = bundles.verify(bundle, trusted=trusted)
        else:
            location = checkpoints.location_from_env()
            if not trusted and location is not None:
                signer = checkpoints.Signer.from_env(create=False)
                trusted = [signer.public_key] if signer else []
            report = checkpoints.verify_record(
                store().iter_chain(),
                location.read() if location else None,
                location=location.description if location else "",
                trusted=trusted,
            )
        signed, bad_approvals = _verify_signed_approvals(bundle)
    ok = report.ok and not bad_approvals
    if output == "json":
        print(json.dumps({**report.to_json(), "ok": ok, "signed_approvals": signed, "approval_problems": bad_approvals}, indent=2))
    else:
        print_report(report)
        if signed and not bad_approvals:
            console.print(f"[green]✓[/] {signed} signed approval{'s' if signed > 1 else ''} re-verified (ssh-keygen, offline)")
        for problem in bad_approvals:
            err_console.print(f"[bold red]✗[/] {escape(problem)}")
    raise typer.Exit(EXIT_OK if ok else EXIT_ERROR)


def _verify_signed_approvals(bundle: Path | None) -> tuple[int, list[str]]:
    """Every signed approval in the record (or the bundle) checked again with the
    statement, signature and allowed_signers lines it keeps (driftgate.signing)."""
    from driftgate import bundle as bundles
    from driftgate import signing

    if bundle is None:
        return signing.verify_approvals(store().iter_chain())
    with bundles.Bundle(bundle) as opened:
        return signing.verify_approvals(opened.entries())


def _trusted_keys(path: Path | None) -> list[str]:
    if path is None:
        return []
    from driftgate.checkpoints import public_key_of

    try:
        keys = [k for k in (public_key_of(line) for line in path.read_text().splitlines() if not line.startswith("#")) if k]
    except OSError as exc:
        fail(f"--trusted-keys {path}: {exc.strerror}")
    if not keys:
        fail(f"--trusted-keys {path} holds no SSH public key")
    return keys


def audit_export(
    format: str = typer.Option("json", "--format", "-f", help="csv (one line per run) or json (runs with their changes)"),
    since: str | None = typer.Option(None, help="runs started at or after this date (UTC)"),
    until: str | None = typer.Option(None, help="runs started before this date (UTC)"),
    environment: str | None = typer.Option(None, "--environment", "-e", help="only this environment"),
    bundle: Path | None = typer.Option(
        None, "--bundle", help="write the whole record, its checkpoints and public keys to this tar file (.tar.gz: gzip)"
    ),
) -> None:
    """Every run in a period, oldest first, for auditors (to stdout); or a bundle to verify offline."""
    from driftgate import audit

    if bundle is not None:
        if since or until or environment:
            fail("--bundle holds the whole record (a chain cannot be checked in parts): drop --since, --until and --environment")
        _export_bundle(bundle)
        return
    if format not in ("csv", "json"):
        fail(f"--format must be csv or json, not {format!r}")
    with record_errors():
        # Streamed: a page of runs in memory at a time, however long the record.
        runs = store().iter_runs(environment, since=_when(since, "--since"), until=_when(until, "--until"))
        rows = (r.model_dump(mode="json") for r in runs)
        if format == "csv":
            audit.write_csv(rows, sys.stdout)
        else:
            audit.write_json(rows, sys.stdout)
            sys.stdout.write("\n")


def _export_bundle(path: Path) -> None:
    from driftgate import bundle as bundles
    from driftgate import checkpoints, recordlock

    with record_errors():
        opened = store()
        location = checkpoints.location_from_env()
        signer = checkpoints.Signer.from_env(create=False) if location else None
        try:
            manifest = bundles.export(
                path,
                opened.iter_chain(),
                location.read() if location else (),
                database=recordlock.describe(opened.engine),
                location=location.description if location else "",
                instance_keys=[signer.public_key] if signer else [],
            )
        except OSError as exc:
            fail(f"cannot write the bundle {path}: {exc.strerror or exc}")
    console.print(
        f"wrote {path}: {manifest['entries']} entries, {manifest['checkpoints']} checkpoints, head {manifest['head'] or '-'}"
        + ("" if location else " (no checkpoints configured: truncation and recomputation cannot be detected)")
    )


def _when(value: str | None, option: str) -> datetime | None:
    """A date or a date-time (ISO 8601; UTC unless it says otherwise)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} takes a date or date-time like 2024-05-01 or 2024-05-01T12:00, not {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
