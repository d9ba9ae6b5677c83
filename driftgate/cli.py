"""`driftgate`: the command line (typer + rich).

Contracts other tools rely on (keep them):

- ``plan ENV``: exit 0 in sync, 2 changes pending, 1 error; ``--output json``
  holds environment, revision, plan_hash and changes (action, target, name, risky).
- ``sync ENV [--yes] [--verbose]``: runs the reconcile flow; exit 0 on success,
  1 on failure or rejection; a failure is one line (stage and reason), the
  run's logs and tracebacks only with ``--verbose``.
- ``history [ENV]``: newest first, text or JSON.

``plan`` and ``history`` run the engine directly (no Prefect import), so they
answer in a few seconds. ``sync``, ``approve``/``reject`` and ``blocks``
import Prefect lazily; they use the server named by ``PREFECT_API_URL`` when
set, otherwise Prefect starts a temporary one (slow: 10-20 s).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from driftgate import git, retry, targets
from driftgate.access import Access, local_access, uses_blocks
from driftgate.config import Config, Environment, load_config
from driftgate.errors import ConfigError, DriftgateError
from driftgate.models import Outcome, Plan, RunPurpose, Trigger
from driftgate.runlog import RunLog
from driftgate.store import Store, StoredRun

app = typer.Typer(
    help="GitOps as Prefect workflows: reconcile environments to Git, with approval gates and a record.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
blocks_app = typer.Typer(help="Prefect blocks for credentials and connection settings.", no_args_is_help=True)
app.add_typer(blocks_app, name="blocks")

# Piped output (CI, the demo, tests) gets a wide console instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(highlight=False, soft_wrap=True, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
ConfigOption = typer.Option(None, "--config", "-c", help="driftgate.yaml (default: $DRIFTGATE_CONFIG, then ./driftgate.yaml)")
OutputOption = typer.Option("text", "--output", "-o", help="text or json")


def _fail(message: str, *, output: str = "text", **extra: Any) -> NoReturn:
    if output == "json":
        print(json.dumps({"error": message, **extra}, indent=2))
    else:
        err_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(EXIT_ERROR)


def _check_output(output: str) -> None:
    if output not in ("text", "json"):
        _fail(f"--output must be text or json, not {output!r}")


# ---------------------------------------------------------------- plan


@app.command()
def plan(
    environment: str = typer.Argument(..., help="environment name from driftgate.yaml"),
    config: Path | None = ConfigOption,
    output: str = OutputOption,
) -> None:
    """Show what a sync would change (read-only). Exit 0 in sync, 2 changes pending, 1 error."""
    _check_output(output)
    try:
        env = load_config(config).environment(environment)
    except ConfigError as exc:  # nothing ran: an invalid file is no run of any environment
        _fail(str(exc), output=output, problems=exc.problems)
    run = RunLog(environment, purpose=RunPurpose.PLAN, trigger=Trigger.CLI.value)
    result: Plan | None = None
    try:
        access = _access(env)
        run.masker = access.masker
        run.checkout = retry.call(
            lambda: git.fetch(env.source, environment=env.name, auth=access.git, signing_keys=access.signing_keys),
            on_retry=_say_retry,
        )
        bundle = targets.render(env, run.checkout, access=access)
        result = run.plan = retry.call(lambda: targets.plan(env, bundle, access), on_retry=_say_retry)
    except DriftgateError as exc:
        run.fail(exc)
    except Exception as exc:  # a bug: still recorded, then shown with its traceback
        run.fail(exc)
        _store().record(run.finish())
        raise
    record = run.finish()
    with _record_errors(output):
        _store().record(record)
    if result is None:
        _fail(record.reason, output=output, environment=environment, stage=record.failed_stage and record.failed_stage.value)
    if output == "json":
        print(json.dumps(plan_json(result, ref=record.ref), indent=2))
    else:
        _print_plan(result, targets.target_for(env), ref=record.ref)
    raise typer.Exit(EXIT_OK if result.in_sync else EXIT_CHANGES)


def _say_retry(attempt: int, seconds: float, error: DriftgateError) -> None:
    """The one retry budget (driftgate.retry), said on stderr as it happens."""
    err_console.print(f"[yellow]attempt {attempt} of {retry.ATTEMPTS} failed, trying again in {seconds:.0f} s:[/] {escape(str(error))}")


def _store() -> Store:
    """The record; from a block when $DRIFTGATE_DATABASE_BLOCK names one (needs the Prefect API)."""
    with _record_errors():
        if os.environ.get("DRIFTGATE_DATABASE_BLOCK"):
            _prefect_defaults()
            from blocks import record_database_url

            return Store(record_database_url())
        return Store()


@contextmanager
def _record_errors(output: str = "text") -> Iterator[None]:
    """The record cannot be opened, read or written (locked beyond its budget,
    unreachable, a newer schema): one line and exit 1, not a traceback."""
    try:
        yield
    except DriftgateError as exc:
        _fail(str(exc), output=output)


def _access(env: Environment) -> Access:
    if not uses_blocks(env):
        return local_access(env)
    from blocks import load_access  # needs the Prefect API: only when blocks are named

    return load_access(env)


def plan_json(result: Plan, *, ref: str = "") -> dict[str, Any]:
    return {
        "environment": result.environment,
        "revision": result.revision,
        "ref": ref,
        "plan_hash": result.plan_hash,
        "in_sync": result.in_sync,
        "risky": result.risky,
        "hosts": list(result.hosts),
        "changes": [c.model_dump(mode="json") for c in result.changes],
        "warnings": list(result.warnings),
    }


def _print_plan(result: Plan, target: targets.Target, *, ref: str = "") -> None:
    where = f"[bold]{escape(result.environment)}[/] at [cyan]{result.revision[:12]}[/]" + (f" ({escape(ref)})" if ref else "")
    for warning in result.warnings:
        console.print(f"[yellow]! warning:[/] {escape(warning)}")
    if result.in_sync:
        console.print(f"[green]✓ In sync:[/] {where}, {len(result.hosts)} {target.noun}(s), nothing to change.")
        return
    risky = sum(c.risky for c in result.changes)
    console.print(
        f"[yellow]● {len(result.changes)} change(s) pending[/] for {where}"
        + (f", [bold red]{risky} risky[/]" if risky else "")
        + f"  (plan {result.plan_hash[:12]})"
    )
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in (*target.columns, "action", "risky"):
        table.add_column(column)
    for change in result.changes:
        risky = f"[red]yes[/] ({', '.join(change.rules)})" if change.risky and change.rules else ("[red]yes[/]" if change.risky else "")
        table.add_row(*(escape(cell) for cell in target.row(change)), change.action.value, risky)
    console.print(table)
    for change in result.changes:
        if change.diff or change.note:
            console.print(f"\n[bold]{escape(target.label(change))}[/]")
        if change.note:
            console.print(f"[yellow]effect unknown:[/] {escape(change.note)}")
        if change.diff:
            console.print(Syntax(change.diff, "diff", theme="ansi_dark", background_color="default"))


# ---------------------------------------------------------------- sync


@app.command()
def sync(
    environment: str = typer.Argument(..., help="environment name from driftgate.yaml"),
    config: Path | None = ConfigOption,
    yes: bool = typer.Option(
        False, "--yes", "-y",
        help="approve, as you, a plan that would pause (the environment's approver rules still apply; recorded)",
    ),
    key: Path | None = typer.Option(
        None, "--key", "-k",
        help="with --yes: sign the pre-approval with this SSH key, where approval.require_signature is on",
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="also print the run's logs here, with the traceback of an unexpected error"
    ),
) -> None:
    """Reconcile ENV now (fetch, render, diff, gate, apply, record). Exit 0 on success, 1 on failure or rejection.

    A failure is one line: the stage and the reason. The run's logs (what it
    fetched, planned, applied; tracebacks of unexpected errors) are on its
    page in the Prefect UI, and here with --verbose."""
    if key is not None and not yes:
        _fail("--key signs a pre-approval: give it with --yes (to answer a paused run: driftgate approve RUN --key)")
    if key is not None and not key.expanduser().is_file():
        _fail(f"--key {key}: no such key file (an SSH private key, or the .pub of a key in ssh-agent)")
    config_path = _validated_config_path(config, environment)
    _prefect_defaults()
    console.print(f"[dim]running the reconcile flow for {escape(environment)} on {_api_description()}…[/]")
    with _prefect_server():  # before Prefect is imported: it reads PREFECT_API_URL once
        from flows.reconcile import reconcile
        from flows.requests import cli_request, requested

        # Trigger, requester and pre-approval travel in this process only, never as
        # flow parameters (which anyone reaching the Prefect API could set).
        request = cli_request(pre_approve=yes, signing_key=key.expanduser() if key else None)
        with requested(request), _run_logs_in_terminal(verbose=verbose):
            state = reconcile(environment=environment, config=str(config_path), return_state=True)
    flow_run_id = str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None
    record = _record_of(flow_run_id)
    if record is None:
        _fail(f"the flow ended {state.type.value} without a record: {state.message}")
    _print_run(record)
    url = _flow_run_url(flow_run_id)
    if url:
        console.print(f"[dim]Prefect UI: {url}[/]")
    raise typer.Exit(EXIT_OK if record.outcome in (Outcome.APPLIED, Outcome.IN_SYNC) else EXIT_ERROR)


def _validated_config_path(config: Path | None, environment: str | None) -> Path:
    """Validate before anything starts: a bad file must not cost a Prefect start-up."""
    try:
        cfg = load_config(config)
        if environment is not None:
            cfg.environment(environment)
    except ConfigError as exc:
        _fail(str(exc))
    return cfg.path


def _prefect_defaults() -> None:
    """Settings that make the CLI pleasant unless the user chose otherwise (set
    before Prefect is imported, which reads them once)."""
    # Warnings in the terminal, but every INFO line still reaches the run's Logs tab in the
    # UI (PREFECT_LOGGING_LEVEL=WARNING would have kept them from the API too).
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # A temporary server takes 8-20 s to start here; Prefect's default gives up at 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


@contextmanager
def _prefect_server() -> Iterator[None]:
    """The server named by ``PREFECT_API_URL``; without one, a temporary server
    for this command that dies with it, even when the command is killed (set
    before Prefect is imported, which reads the URL once)."""
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from flows.temporary_server import temporary_server

    with ExitStack() as stack:
        try:
            stack.enter_context(temporary_server(float(os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"])))
        except RuntimeError as exc:  # it did not start
            _fail(str(exc))
        yield


class _NoFailureLogs(logging.Filter):
    """The CLI says how a run failed in one line, from the record: Prefect's own
    ERROR lines and tracebacks would only repeat it, at length."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR and not record.exc_info


@contextmanager
def _run_logs_in_terminal(*, verbose: bool) -> Iterator[None]:
    """While a flow runs in this process: Prefect's console handler shows
    warnings only (the run's logs go to the API either way), or with
    ``verbose`` everything from INFO up, tracebacks included."""
    from prefect.logging.handlers import PrefectConsoleHandler

    handlers = [h for h in logging.getLogger().handlers if isinstance(h, PrefectConsoleHandler)]
    levels = [h.level for h in handlers]
    quiet = _NoFailureLogs()
    for handler in handlers:
        if verbose:
            handler.setLevel(logging.INFO)
        else:
            handler.addFilter(quiet)
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels):
            handler.setLevel(level)
            handler.removeFilter(quiet)


def _api_description() -> str:
    url = os.environ.get("PREFECT_API_URL")
    return f"the Prefect server at {url}" if url else "a temporary Prefect server (set PREFECT_API_URL to use yours)"


def _flow_run_url(flow_run_id: str | None) -> str | None:
    api = os.environ.get("PREFECT_API_URL")
    if not (api and flow_run_id):
        return None
    return f"{api.removesuffix('/').removesuffix('/api')}/runs/flow-run/{flow_run_id}"


def _record_of(flow_run_id: str | None) -> StoredRun | None:
    return _store().for_flow_run(flow_run_id) if flow_run_id else None


_OUTCOME_STYLE = {
    Outcome.APPLIED: "green",
    Outcome.IN_SYNC: "green",
    Outcome.DRIFT: "yellow",
    Outcome.REJECTED: "magenta",
    Outcome.FAILED: "red",
    Outcome.SKIPPED: "dim",
}


def _key_fingerprint(signed_answer: str) -> str:
    """The fingerprint of the key in a signature (check-novalidate prints it; no principal needed)."""
    from driftgate import signing

    statement, _, _ = signed_answer.partition("-----BEGIN SSH SIGNATURE-----")
    try:
        return signing.signer_fingerprint(statement, signed_answer)
    except (signing.SignatureRefused, signing.SigningUnavailable):
        return "an SSH key"


def _print_run(run: StoredRun) -> None:
    style = _OUTCOME_STYLE[run.outcome]
    console.print(
        f"[{style} bold]{run.outcome.value}[/]: {escape(run.environment)} at [cyan]{run.commit[:12] or '-'}[/]"
        f" — {len(run.changes)} change(s), record #{run.id}, {run.duration_s:.1f} s"
    )
    for change in run.changes:
        what = targets.label(change)
        console.print(
            f"  {change.action.value:<7} {escape(what)}"
            + (" [red](risky)[/]" if change.risky else "")
            + (" [bold yellow](unplanned: not in the approved plan)[/]" if change.unplanned else "")
        )
    if run.approval and run.approval.required:
        a = run.approval
        console.print(f"  approval: {a.decision.value} by {escape(a.approver or '-')}: {escape(a.reason)}")
        if a.signature:
            console.print(f"  signed by {escape(a.signature.principal or '-')} with {escape(a.signature.fingerprint or '-')}")
    target = targets.for_record(run.changes, run.hosts)
    for host in run.hosts:
        console.print(f"  {escape(target.result_line(host) if target else host.host)}")
    if run.failed_stage:
        console.print(f"  [red]stopped at {run.failed_stage.value} ({run.failed_stage.reason}):[/] {escape(run.reason)}")
    elif run.reason:
        console.print(f"  [yellow]{escape(run.reason)}[/]")


# ---------------------------------------------------------------- history, show, audit


def _when(value: str | None, option: str) -> datetime | None:
    """A date or a date-time (ISO 8601; UTC unless it says otherwise)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        _fail(f"{option} takes a date or date-time like 2024-05-01 or 2024-05-01T12:00, not {value!r}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _outcome_text(outcome: Outcome) -> str:
    return f"[{_OUTCOME_STYLE.get(outcome, 'red')}]{outcome.value}[/]"


@app.command()
def history(
    environment: str | None = typer.Argument(None, help="only this environment"),
    since: str | None = typer.Option(None, help="only runs started at or after this date (UTC)"),
    commit: str | None = typer.Option(None, help="only runs of this commit (a SHA prefix)"),
    approver: str | None = typer.Option(None, help="only runs approved or rejected by this person"),
    output: str = OutputOption,
    limit: int = typer.Option(20, help="at most this many runs (0: all)"),
) -> None:
    """Recorded runs, newest first."""
    _check_output(output)
    with _record_errors(output):
        runs = _store().history(environment, limit=limit or None, since=_when(since, "--since"), commit=commit, approver=approver)
    if output == "json":
        print(json.dumps([r.model_dump(mode="json") for r in runs], indent=2))
        return
    if not runs:
        console.print("no runs recorded yet" + (f" for {escape(environment)}" if environment else ""))
        return
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("#", "started (UTC)", "environment", "mode", "outcome", "commit", "changes", "approval", "by", "trigger"):
        table.add_column(column)
    for run in runs:
        approval = run.approval
        table.add_row(
            str(run.id),
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            escape(run.environment),
            run.mode.value,
            _outcome_text(run.outcome),
            run.commit[:12] or "-",
            str(len(run.changes)),
            f"{approval.decision.value} ({escape(approval.approver or '-')})" if approval and approval.required else "-",
            escape(run.requested_by),
            escape(run.trigger),
        )
    console.print(table)


@app.command()
def show(
    run: str = typer.Argument(..., help="record id (#), run id, or Prefect flow-run id"),
    output: str = OutputOption,
) -> None:
    """One recorded run in full: who, what, where, when, approval, result, every change with its diff."""
    _check_output(output)
    with _record_errors(output):
        found = _store().get(run)
    if found is None:
        _fail(f"no run {run!r} in the record (see `driftgate history`)", output=output)
    if output == "json":
        print(json.dumps(found.model_dump(mode="json"), indent=2))
        return
    r = found
    console.print(f"[bold]run #{r.id}[/] {_outcome_text(r.outcome)} — {escape(r.environment)} ({r.purpose.value}, {r.mode.value})")
    facts = [
        ("run id", r.run_id),
        ("started / finished (UTC)", f"{r.started_at:%Y-%m-%d %H:%M:%S} / {r.finished_at:%Y-%m-%d %H:%M:%S} ({r.duration_s:.1f} s)"),
        ("requested by", f"{r.requested_by or '-'} ({r.trigger})"),
        ("source", f"{r.repo or '-'} @ {r.ref or '-'}"),
        ("commit", f"{r.commit or '-'}" + (f" by {r.commit_author}" if r.commit_author else "")),
        ("signature", f"verified: {r.signed_by}" if r.signed_by else "not required"),
        ("plan hash", r.plan_hash or "-"),
        ("Prefect flow run", r.flow_run_url or r.flow_run_id or "-"),
        ("driftgate", r.version or "-"),
        ("record", f"seq {r.seq}, row hash {r.row_hash}"),
    ]
    if r.approval:
        a = r.approval
        decided_at = a.model_dump(mode="json")["decided_at"]  # as the record holds it (ISO text)
        facts.append(
            ("approval", f"{a.decision.value} by {a.approver or '-'} at {decided_at or '-'}: {a.reason}"
             + (f" (plan {a.plan_hash[:12]})" if a.plan_hash else "") if a.required else "not required")
        )  # fmt: skip
    if r.failed_stage:
        facts.append(("stopped at", f"{r.failed_stage.value} ({r.failed_stage.reason}): {r.reason}"))
    elif r.reason:
        facts.append(("reason", r.reason))
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in facts:
        table.add_row(key, escape(value))
    console.print(table)
    if r.changes:
        console.print(f"\n[bold]{len(r.changes)} change(s)[/]")
    for change in r.changes:
        steps = change.model_dump(mode="json", include={"result", "health"})
        extra = ", ".join(f"{k}: {v}" for k, v in steps.items() if v)
        risky = f" [red](risky: {', '.join(change.rules) or 'yes'})[/]" if change.risky else ""
        unplanned = " [bold yellow](unplanned: apply made it, the approved plan did not list it)[/]" if change.unplanned else ""
        console.print(f"\n{change.action.value} [bold]{escape(change.target)}: {escape(change.name)}[/]{risky}{unplanned}" + (f"  [dim]{escape(extra)}[/]" if extra else ""))
        if change.note:
            console.print(f"[yellow]effect unknown when planned:[/] {escape(change.note)}")
        if change.diff:
            console.print(Syntax(change.diff, "diff", theme="ansi_dark", background_color="default"))


audit_app = typer.Typer(
    help="The record for auditors: verify its hash chain and checkpoints, export it or a bundle.", no_args_is_help=True
)
app.add_typer(audit_app, name="audit")
TrustedKeysOption = typer.Option(
    None, "--trusted-keys", help="public keys (or allowed_signers lines) the checkpoints must be signed by; default: the instance key"
)


@audit_app.command("verify")
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

    _check_output(output)
    with _record_errors(output):
        trusted = _trusted_keys(trusted_keys)
        if bundle is not None:
            report = bundles.verify(bundle, trusted=trusted)
        else:
            location = checkpoints.location_from_env()
            if not trusted and location is not None:
                signer = checkpoints.Signer.from_env(create=False)
                trusted = [signer.public_key] if signer else []
            report = checkpoints.verify_record(
                _store().iter_chain(),
                location.read() if location else None,
                location=location.description if location else "",
                trusted=trusted,
            )
        signed, bad_approvals = _verify_signed_approvals(bundle)
    ok = report.ok and not bad_approvals
    if output == "json":
        print(json.dumps({**report.to_json(), "ok": ok, "signed_approvals": signed, "approval_problems": bad_approvals}, indent=2))
    else:
        _print_report(report)
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
        return signing.verify_approvals(_store().iter_chain())
    with bundles.Bundle(bundle) as opened:
        return signing.verify_approvals(opened.entries())


def _trusted_keys(path: Path | None) -> list[str]:
    if path is None:
        return []
    from driftgate.checkpoints import public_key_of

    try:
        keys = [k for k in (public_key_of(line) for line in path.read_text().splitlines() if not line.startswith("#")) if k]
    except OSError as exc:
        _fail(f"--trusted-keys {path}: {exc.strerror}")
    if not keys:
        _fail(f"--trusted-keys {path} holds no SSH public key")
    return keys


def _print_report(report: Any) -> None:
    verdict, newest = report.verdict, report.log.newest
    if report.ok:
        console.print(f"[green]✓ the record is intact:[/] {verdict.entries} entries, head {verdict.head}")
    elif verdict.ok:
        console.print(f"- the hash chain holds together: {verdict.entries} entries, head {verdict.head}; but its checkpoints disagree:")
    else:
        err_console.print(f"[bold red]✗ the record was tampered with:[/] {escape(verdict.problem)}")
    if newest is not None:
        console.print(
            f"{'[green]✓[/]' if not report.findings else '-'} {len(report.log.marks)} checkpoints in {escape(report.location)}; "
            f"the newest, {escape(newest.name)}, signed seq {newest.seq} (head {newest.head[:16]}) with {', '.join(report.trusted)}"
        )
    for finding in report.findings:
        err_console.print(f"[bold red]✗[/] {escape(finding.problem)}")
    for note in report.notes:
        console.print(f"[yellow]![/] {escape(note)}")


@audit_app.command("export")
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
            _fail("--bundle holds the whole record (a chain cannot be checked in parts): drop --since, --until and --environment")
        _export_bundle(bundle)
        return
    if format not in ("csv", "json"):
        _fail(f"--format must be csv or json, not {format!r}")
    with _record_errors():
        runs = _store().history(environment, limit=None, since=_when(since, "--since"), until=_when(until, "--until"))
    rows = [r.model_dump(mode="json") for r in reversed(runs)]
    sys.stdout.write(audit.export_csv(rows) if format == "csv" else audit.export_json(rows) + "\n")


def _export_bundle(path: Path) -> None:
    from driftgate import bundle as bundles
    from driftgate import checkpoints, recordlock

    with _record_errors():
        store = _store()
        location = checkpoints.location_from_env()
        signer = checkpoints.Signer.from_env(create=False) if location else None
        try:
            manifest = bundles.export(
                path,
                store.iter_chain(),
                location.read() if location else (),
                database=recordlock.describe(store.engine),
                location=location.description if location else "",
                instance_keys=[signer.public_key] if signer else [],
            )
        except OSError as exc:
            _fail(f"cannot write the bundle {path}: {exc.strerror or exc}")
    console.print(
        f"wrote {path}: {manifest['entries']} entries, {manifest['checkpoints']} checkpoints, head {manifest['head'] or '-'}"
        + ("" if location else " (no checkpoints configured: truncation and recomputation cannot be detected)")
    )


# ---------------------------------------------------------------- approvals


@app.command()
def approvals(output: str = OutputOption) -> None:
    """Runs waiting for approval: environment, commit, plan, who asked, since when, and where to see them."""
    _check_output(output)
    _prefect_defaults()
    from flows.approval import paused_runs

    runs = paused_runs()
    if output == "json":
        rows = [{**r.__dict__, "url": _flow_run_url(r.id), "waiting_since": r.waiting_since and r.waiting_since.isoformat()} for r in runs]
        print(json.dumps(rows, indent=2))
        return
    if not runs:
        console.print("no run is waiting for approval")
        return
    # One block per run: ids and URLs are too long for a table row.
    for r in runs:
        since = r.waiting_since.strftime("%Y-%m-%d %H:%M:%S UTC") if r.waiting_since else "-"
        console.print(
            f"[bold]{escape(r.environment)}[/] at [cyan]{r.commit[:12] or '-'}[/], waiting since {since}"
            f" (requested by {escape(r.requester or '-')})"
        )
        console.print(f"  run {r.id}: plan {r.plan_hash[:12] or '-'}: {escape(r.summary or '-')}")
        if r.asked_again:
            console.print(f"  [yellow]asked again:[/] {escape(r.asked_again)}")
        anyone = f"anyone but {r.requester}" if r.forbid_self_approval else "anyone"
        console.print(f"  may decide: {escape(', '.join(r.deciders) if r.deciders is not None else anyone)}")
        if r.require_signature:
            console.print(f"  signed approval required until {escape(r.expires)}: add --key ~/.ssh/id_ed25519 to approve or reject")
        url = _flow_run_url(r.id)
        if url:
            console.print(f"  {url}")
    console.print(escape("answer with: driftgate approve RUN [--reject] [--reason TEXT] [--as NAME] [--key SSH_KEY]"), style="dim")


_AS_OPTION = typer.Option(None, "--as", "--approver", help="who decides (default: $DRIFTGATE_USER or your login)")
_REASON_OPTION = typer.Option("", "--reason", help="why; kept in the record")
_KEY_OPTION = typer.Option(
    None, "--key", "-k",
    help="sign the answer with this SSH key (a private key, or the .pub of a key in ssh-agent or on a FIDO token); "
    "needed where approval.require_signature is on",
)  # fmt: skip


@app.command()
def approve(
    run: str = typer.Argument(..., help="flow run id (see `driftgate approvals`), or an environment with one paused run"),
    reject: bool = typer.Option(False, "--reject", help="reject instead: nothing is applied"),
    reason: str = _REASON_OPTION,
    approver: str = _AS_OPTION,
    key: str | None = _KEY_OPTION,
) -> None:
    """Approve (or --reject) a paused sync: the same as the form in the Prefect UI."""
    _answer(run, "reject" if reject else "approve", approver, reason, key)


@app.command()
def reject(
    run: str = typer.Argument(..., help="flow run id, or an environment with one paused run"),
    reason: str = _REASON_OPTION,
    approver: str = _AS_OPTION,
    key: str | None = _KEY_OPTION,
) -> None:
    """Reject a paused sync: nothing is applied and the run ends as rejected."""
    _answer(run, "reject", approver, reason, key)


def _answer(ref: str, decision: str, approver: str | None, reason: str, key: str | None) -> None:
    from driftgate.runlog import current_user

    _prefect_defaults()
    # Without PREFECT_API_URL Prefect starts a temporary server on the same
    # database (PREFECT_HOME) as the paused run's, and finds it there.
    from flows.approval import answer_run, await_verdict, find_paused_run, sign_answer

    name = approver or current_user()
    signed = ""
    try:
        paused = find_paused_run(ref)
        signature = sign_answer(paused, decision=decision, approver=name, key=key) if key and paused.require_signature else ""
        answer_run(paused, decision=decision, approver=name, reason=reason, signature=signature)
        if paused.require_signature:  # only the flow can check a signature: wait for its verdict
            await_verdict(paused)
            signed = f", signed with {_key_fingerprint(signature)}"
    except (LookupError, PermissionError, ValueError) as exc:
        _fail(str(exc))
    done = "approved" if decision == "approve" else "rejected"
    console.print(
        f"{done} run {paused.id} of {escape(paused.environment)}"
        + (f" (plan {paused.plan_hash[:12]}: {escape(paused.summary)})" if paused.plan_hash else "")
        + signed
    )
    if key and not paused.require_signature:
        console.print(f"[dim]{escape(paused.environment)} does not require signed approvals: the answer was sent unsigned[/]")
    url = _flow_run_url(paused.id)
    if url:
        console.print(f"[dim]Prefect UI: {url}[/]")


# ---------------------------------------------------------------- blocks, demo


@blocks_app.command("register")
def blocks_register() -> None:
    """Register driftgate's block types so they appear on the Prefect UI's Blocks page."""
    _prefect_defaults()
    from blocks import register_block_types

    for slug in register_block_types():
        console.print(f"registered block type [bold]{slug}[/]")


@app.command()
def demo(
    workdir: Path = typer.Option(Path(".demo"), help="throwaway folder for the demo's repo, host and record"),
    port: int = typer.Option(4200, help="port of the demo's Prefect server (the next free one is used if taken)"),
) -> None:
    """Walk through a GitOps loop on this machine: plan, sync, drift, plan, sync, history."""
    from driftgate.demo import run_demo

    raise typer.Exit(run_demo(workdir.resolve(), port=port))


# ---------------------------------------------------------------- scheduling

deployments_app = typer.Typer(help="Prefect deployments: one sync and one drift check per environment.", no_args_is_help=True)
app.add_typer(deployments_app, name="deployments")


@app.command()
def serve(config: Path | None = ConfigOption) -> None:
    """Serve every environment's sync and drift-check deployments on their schedules (SIGTERM or Ctrl-C stops)."""
    config_path = _validated_config_path(config, None)
    _prefect_defaults()
    os.environ["PREFECT_LOGGING_LEVEL"] = os.environ.get("DRIFTGATE_SERVE_LOG_LEVEL", "INFO")
    from deployments.serve import serve as serve_deployments

    console.print(f"serving the deployments of {config_path} on {_api_description()}")
    serve_deployments(str(config_path))


@deployments_app.command("render")
def deployments_render(
    config: Path | None = ConfigOption,
    output: Path = typer.Option(Path("deployments/prefect.yaml"), help="where to write prefect.yaml"),
    work_pool: str = typer.Option("driftgate", help="the process work pool the deployments run on"),
) -> None:
    """Write prefect.yaml with one sync and one drift-check deployment per environment."""
    from driftgate.prefect_yaml import prefect_yaml

    cfg = _load_or_fail(config)
    try:  # relative to the checkout the workers start in, when it is inside it
        config_ref = str(cfg.path.relative_to(Path.cwd()))
    except ValueError:
        config_ref = str(cfg.path)
    output.write_text(prefect_yaml(cfg, work_pool=work_pool, config_ref=config_ref))
    console.print(f"wrote {output}: {2 * len(cfg.environments)} deployments on work pool {work_pool!r}")


@app.command()
def status(
    environment: str | None = typer.Argument(None, help="only this environment"),
    config: Path | None = ConfigOption,
    output: str = OutputOption,
) -> None:
    """One line per environment: last applied commit, Git's head, last check, in sync / drifted / out of date / failing."""
    from driftgate.status import State, environment_status

    _check_output(output)
    cfg = _load_or_fail(config)
    names = [environment] if environment else sorted(cfg.environments)
    store = _store()
    lines = []
    for name in names:
        env = cfg.environment(name)
        head, head_error = None, ""
        try:
            access = _access(env)
            head = git.head_commit(env.source, environment=name, auth=access.git)
        except DriftgateError as exc:
            head_error = str(exc)
        with _record_errors(output):
            lines.append(environment_status(name, store, head=head, head_error=head_error))
    if os.environ.get("PREFECT_API_URL"):  # paused approvals live in Prefect
        lines = [line.model_copy(update={"waiting_approval": _paused_run(line.environment)}) for line in lines]
    if output == "json":
        print(json.dumps([line.model_dump(mode="json") for line in lines], indent=2))
        return
    style = {State.IN_SYNC: "green", State.OUT_OF_DATE: "yellow", State.DRIFTED: "yellow", State.UNKNOWN: "magenta", State.FAILING: "red"}
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("environment", "state", "applied", "git head", "last sync", "last check", "approval", "why"):
        table.add_column(column)
    for line in lines:
        table.add_row(
            escape(line.environment),
            f"[{style[line.state]}]{line.state.value}[/]",
            line.last_applied_commit[:12] or "-",
            line.head_commit[:12] or "-",
            f"{line.last_sync_at:%Y-%m-%d %H:%M} {line.last_sync_outcome}" if line.last_sync_at else "-",
            f"{line.last_check_at:%Y-%m-%d %H:%M} {line.last_check_outcome}" if line.last_check_at else "-",
            "waiting" if line.waiting_approval else "-",
            escape(line.reason),
        )
    console.print(table)


def _load_or_fail(config: Path | None) -> Config:
    try:
        return load_config(config)
    except ConfigError as exc:
        _fail(str(exc))


def _paused_run(environment: str) -> str:
    _prefect_defaults()
    from flows.approval import paused_runs

    return next((run.id for run in paused_runs() if run.environment == environment), "")


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
