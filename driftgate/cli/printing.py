"""How the commands print what they found, for a person (rich) or a program (JSON).

Plans (``plan``), recorded runs (``sync``, ``history``, ``show``), the record's
verification (``audit verify``), runs waiting for approval (``approvals``) and
environments' status (``status``). Printing only: nothing here reads the record
or runs anything.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from driftgate.cli.common import console, err_console
from driftgate.cli.prefect_env import flow_run_url
from driftgate.models import Outcome

if TYPE_CHECKING:
    from driftgate import targets
    from driftgate.models import CommitRange, Plan
    from driftgate.store import StoredRun

OUTCOME_STYLE = {
    Outcome.APPLIED: "green",
    Outcome.IN_SYNC: "green",
    Outcome.DRIFT: "yellow",
    Outcome.REJECTED: "magenta",
    Outcome.FAILED: "red",
    Outcome.SKIPPED: "dim",
    Outcome.REFUSED: "red",
}


def outcome_text(outcome: Outcome) -> str:
    return f"[{OUTCOME_STYLE.get(outcome, 'red')}]{outcome.value}[/]"


# ---------------------------------------------------------------- plan


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
        "commits": result.commits.model_dump(mode="json") if result.commits else None,
    }


def print_plan(result: Plan, target: targets.Target, *, ref: str = "") -> None:
    where = f"[bold]{escape(result.environment)}[/] at [cyan]{result.revision[:12]}[/]" + (f" ({escape(ref)})" if ref else "")
    for warning in result.warnings:
        console.print(f"[yellow]! warning:[/] {escape(warning)}")
    print_commits(result.commits)
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
            print_diff(change.diff)


def print_diff(diff: str) -> None:
    """A change's diff, coloured (plan, show)."""
    from rich.syntax import Syntax  # Pygments: only when there is a diff to colour

    console.print(Syntax(diff, "diff", theme="ansi_dark", background_color="default"))


def print_commits(found: CommitRange | None) -> None:
    """The commits since the last applied revision (plan, show)."""
    if found is None:
        return
    from driftgate import commits  # GitPython: not for history or status

    console.print(f"{escape(commits.heading(found))}:")
    for line in commits.lines(found):
        console.print(f"  {escape(line)}")


# ---------------------------------------------------------------- recorded runs


def print_run(run: StoredRun) -> None:
    """A sync's result, as ``driftgate sync`` ends."""
    from driftgate import targets

    style = OUTCOME_STYLE[run.outcome]
    console.print(
        f"[{style} bold]{run.outcome.value}[/]: {escape(run.environment)} at [cyan]{run.commit[:12] or '-'}[/]"
        f" — {len(run.changes)} change(s), record #{run.id}, {run.duration_s:.1f} s"
    )
    for key, value in origin_facts(run):
        console.print(f"  {key}: {escape(value)}")
    for change in run.changes:
        console.print(
            f"  {change.action.value:<7} {escape(targets.label(change))}"
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


def origin_facts(run: StoredRun) -> list[tuple[str, str]]:
    """Where a run was aimed when not at its ref's head: the revision, a rollback's or a promotion's origin."""
    facts = [("revision", run.revision)] if run.revision else []
    if run.rolled_back_from:
        facts.append(("rolled back from", run.rolled_back_from))
    if run.promoted_from:
        facts.append(("promoted from", run.promoted_from))
    return facts


def print_history(runs: list[StoredRun]) -> None:
    """One row per run (``driftgate history``)."""
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("#", "started (UTC)", "environment", "kind", "outcome", "commit", "changes", "approval", "by", "trigger"):
        table.add_column(column)
    for run in runs:
        approval = run.approval
        table.add_row(
            str(run.id),
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            escape(run.environment),
            run.purpose.value,  # sync, drift, plan, rollback: what the run was for
            outcome_text(run.outcome),
            run.commit[:12] or "-",
            str(len(run.changes)),
            f"{approval.decision.value} ({escape(approval.approver or '-')})" if approval and approval.required else "-",
            escape(run.requested_by),
            escape(run.trigger),
        )
    console.print(table)


def print_stored_run(r: StoredRun, *, commits: CommitRange | None = None) -> None:
    """One recorded run in full (``driftgate show``), with the ``commits`` it brought."""
    console.print(f"[bold]run #{r.id}[/] {outcome_text(r.outcome)} — {escape(r.environment)} ({r.purpose.value}, {r.mode.value})")
    facts = [
        ("run id", r.run_id),
        ("started / finished (UTC)", f"{r.started_at:%Y-%m-%d %H:%M:%S} / {r.finished_at:%Y-%m-%d %H:%M:%S} ({r.duration_s:.1f} s)"),
        ("requested by", f"{r.requested_by or '-'} ({r.trigger})"),
        ("source", f"{r.repo or '-'} @ {r.ref or '-'}"),
        ("commit", f"{r.commit or '-'}" + (f" by {r.commit_author}" if r.commit_author else "")),
        *origin_facts(r),
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
    if commits is not None:
        console.print()
        print_commits(commits)
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
            print_diff(change.diff)


# ---------------------------------------------------------------- audit


def print_report(report: Any) -> None:
    """What ``audit verify`` found in the hash chain and the checkpoints."""
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


# ---------------------------------------------------------------- approvals, status


def print_paused_runs(runs: list[Any]) -> None:
    """Runs waiting for approval (``driftgate approvals``), one block per run:
    ids and URLs are too long for a table row."""
    if not runs:
        console.print("no run is waiting for approval")
        return
    for r in runs:
        since = r.waiting_since.strftime("%Y-%m-%d %H:%M:%S UTC") if r.waiting_since else "-"
        console.print(
            f"[bold]{escape(r.environment)}[/] at [cyan]{r.commit[:12] or '-'}[/], waiting since {since}"
            f" (requested by {escape(r.requester or '-')})"
        )
        console.print(f"  run {r.id}: plan {r.plan_hash[:12] or '-'}: {escape(r.summary or '-')}")
        if r.commits_heading:
            console.print(f"  {escape(r.commits_heading)}:")
            for line in r.commits:
                console.print(f"    {escape(line)}")
        if r.asked_again:
            console.print(f"  [yellow]asked again:[/] {escape(r.asked_again)}")
        anyone = f"anyone but {r.requester}" if r.forbid_self_approval else "anyone"
        console.print(f"  may decide: {escape(', '.join(r.deciders) if r.deciders is not None else anyone)}")
        if r.expires:
            console.print(f"  deadline: {deadline_text(r.expires)}: no decision by then is a rejection")
        if r.require_signature:
            console.print("  signed approval required: add --key ~/.ssh/id_ed25519 to approve or reject")
        url = flow_run_url(r.id)
        if url:
            console.print(f"  {url}")
    console.print(escape("answer with: driftgate approve RUN [--reject] [--reason TEXT] [--as NAME] [--key SSH_KEY]"), style="dim")


def print_pause(notice: Any) -> None:
    """What ``driftgate sync`` says when its run pauses for approval (a `PauseNotice`)."""
    from driftgate.report import clock_time, duration_text

    where = flow_run_url(notice.flow_run) or notice.url or f"flow run {notice.flow_run}"
    console.print(f"[yellow bold]paused:[/] {escape(notice.environment)} waits for approval: {escape(notice.summary)}")
    if notice.asked_again:
        console.print(f"  [yellow]asked again:[/] {escape(notice.asked_again)}")
    console.print(f"  run: {escape(where)}")
    console.print(f"  may decide: {escape(notice.deciders)}")
    console.print(f"  deadline: {clock_time(notice.deadline)} (in {duration_text(notice.timeout)}): no decision by then is a rejection")
    console.print(escape(f"  answer: driftgate approve {notice.flow_run} [--reject] [--reason TEXT] [--as NAME]"), style="dim")


def deadline_text(expires: str, *, now: datetime | None = None) -> str:
    """'2026-12-01T13:00:00Z (in 59m)': the clock time (UTC) and what is left."""
    from driftgate.report import clock_time, duration_text

    moment = datetime.fromisoformat(expires)
    left = moment - (now or datetime.now(timezone.utc))
    return f"{clock_time(moment)} (" + (f"in {duration_text(left)}" if left.total_seconds() >= 1 else "passed") + ")"


def print_status(lines: list[Any]) -> None:
    """One row per environment (``driftgate status``)."""
    from driftgate.status import State

    style = {State.IN_SYNC: "green", State.OUT_OF_DATE: "yellow", State.DRIFTED: "yellow", State.UNKNOWN: "magenta", State.FAILING: "red"}
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in ("environment", "state", "applied", "git head", "pinned", "last sync", "last check", "approval", "why"):
        table.add_column(column)
    for line in lines:
        table.add_row(
            escape(line.environment),
            f"[{style[line.state]}]{line.state.value}[/]",
            line.last_applied_commit[:12] or "-",
            line.head_commit[:12] or "-",
            escape(line.pin) or "-",
            f"{line.last_sync_at:%Y-%m-%d %H:%M} {line.last_sync_outcome}" if line.last_sync_at else "-",
            f"{line.last_check_at:%Y-%m-%d %H:%M} {line.last_check_outcome}" if line.last_check_at else "-",
            "waiting" if line.waiting_approval else "-",
            escape("; ".join(why for why in (line.reason, line.suspended, line.sync_window and f"syncs closed: {line.sync_window}") if why)),
        )
    console.print(table)
