"""Plans and runs as Markdown and tables, for the Prefect UI and the CLI.

Pure functions over the models; every diff in a `Plan` is already masked (a
Secret's diff says that a key changed, never its value). Called by the diff
task (plan artifacts), the gate (the approval form's description), the record
task, and `driftgate approvals`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from driftgate import commits, targets
from driftgate.models import Change, CommitRange, Plan, RunRecord

MAX_DIFF_LINES = 200  # per change: a page a reviewer can still read


def change_label(change: Change) -> str:
    """'Deployment/web/api' for an object, 'web1: restart nginx' for an Ansible
    task: as its target kind names it (`driftgate.targets.label`)."""
    return targets.label(change)


def plan_rules(plan: Plan) -> list[str]:
    """Every rule that made some change risky, in first-seen order."""
    return list(dict.fromkeys(rule for c in plan.changes for rule in c.rules))


def plan_summary(plan: Plan) -> str:
    """One line: '3 changes (1 create, 2 update), 2 risky: delete, production'."""
    if plan.in_sync:
        return "in sync: nothing to change"
    actions = Counter(c.action.value for c in plan.changes)
    counts = ", ".join(f"{n} {action}" for action, n in sorted(actions.items()))
    risky = sum(c.risky for c in plan.changes)
    line = f"{len(plan.changes)} change{'s' if len(plan.changes) != 1 else ''} ({counts})"
    if risky:
        line += f", {risky} risky: {', '.join(plan_rules(plan))}"
    return line


def plan_markdown(plan: Plan, *, limit: int = 50) -> str:
    """The plan as a person reviews it before approving: a summary line, a
    table, then per change a unified diff."""
    head = (
        f"### Plan for `{plan.environment}` at `{plan.revision[:12]}`\n\n"
        f"plan hash `{plan.plan_hash[:16]}`; hosts/objects: {_cell(', '.join(plan.hosts[:20])) or '-'}"
        f"{' …' if len(plan.hosts) > 20 else ''}\n\n"
    )
    if plan.warnings:
        head += "".join(f"> **Warning:** {_cell(w)}\n" for w in plan.warnings) + "\n"
    head += commits_markdown(plan.commits)
    if plan.in_sync:
        return head + "**In sync**: nothing to change.\n"
    rows = ["| change | action | risky | rules |", "|---|---|---|---|"]
    rows += [
        f"| {_cell(change_label(c))} | {c.action.value} | {'**yes**' if c.risky else 'no'} | {_cell(', '.join(c.rules))} |"
        for c in plan.changes[:limit]
    ]
    diffs = [
        f"**{_cell(change_label(c))}** ({c.action.value})\n\n"
        + (f"> **effect unknown:** {_cell(c.note)}\n\n" if c.note else "")
        + (_fenced(c.diff) if c.diff else "")
        for c in plan.changes[:limit]
        if c.diff or c.note
    ]
    more = f"\n\n… and {len(plan.changes) - limit} more changes" if len(plan.changes) > limit else ""
    return head + f"**{plan_summary(plan)}**\n\n" + "\n".join(rows) + more + "\n\n" + "\n\n".join(diffs) + "\n"


def commits_markdown(found: CommitRange | None) -> str:
    """The commits since the last applied revision, as a list ('' when unknown)."""
    if found is None:
        return ""
    items = "".join(f"- {_cell(line)}\n" for line in commits.lines(found))
    return f"**{commits.heading(found)}:**\n\n" + (items or "- (none: the same commit)\n") + "\n"


def plan_table(plan: Plan) -> list[dict[str, str]]:
    """One row per change (object or host, action, risky, rules) for a table artifact."""
    return [
        {
            "object or host": c.target,
            "task or name": c.name,
            "action": c.action.value,
            "risky": "yes" if c.risky else "no",
            "rules": ", ".join(c.rules),
        }
        for c in plan.changes
    ]


def approval_markdown(
    plan: Plan,
    *,
    requester: str,
    deciders: list[str] | None,
    forbid_self_approval: bool,
    timeout: timedelta,
    deadline: datetime | None = None,
    asked_again: str = "",
    signing: str = "",
) -> str:
    """The text above the approval form: what deciding means, how to sign
    (``signing``, when the environment requires signatures), then the plan."""
    if deciders is None:
        who = "anyone" + (f" except {requester}, who requested this run" if forbid_self_approval else "")
    else:
        who = ", ".join(deciders) or "nobody (the only approver requested this run): it will time out"
    lines = [
        f"## Approve plan `{plan.plan_hash[:16]}` for `{plan.environment}`?",
        "",
        f"Requested by **{requester}**. {plan_summary(plan)}.",
        "",
        "- **approve** applies exactly this plan. driftgate computes the plan again right "
        "before applying; if it changed (a new commit, new drift) you are asked again.",
        "- **reject** applies nothing; the run ends as rejected, with your reason in the record.",
        f"- may decide: {who}. No decision within {duration_text(timeout)}"
        + (f" (by {clock_time(deadline)})" if deadline else "") + " counts as a rejection.",
        "",
    ]
    if asked_again:
        lines[2:2] = [f"> **Asked again:** {asked_again}", ""]
    return "\n".join(lines) + "\n" + (signing + "\n" if signing else "") + plan_markdown(plan)


def signature_markdown(statement: str, command: str, *, run_id: str) -> str:
    """How to sign an answer, above the form of an environment with
    ``approval.require_signature``: the statement for the approver and
    decision shown, and the one command that prints its signature."""
    return "\n".join([
        "### Sign your answer (this environment requires signed approvals)",
        "",
        "Your SSH key must sign this statement, with **your** decision and name on the "
        "`decision:` and `approver:` lines (the example below is filled in for the first approver):",
        "",
        _code_block(statement.rstrip("\n").split("\n"), "text"),
        "",
        "Run this, after changing `approve` and the name at the end of `printf` to your decision and your name "
        "(and `-f` to your key; a `.pub` file for a key in ssh-agent or on a FIDO token), then paste "
        "everything it prints into **signature**:",
        "",
        _code_block([command], "sh"),
        "",
        f"Or from a shell with driftgate: `driftgate approve {run_id} --key ~/.ssh/id_ed25519 --as NAME` "
        "(add `--reject` to reject).",
        "",
    ])  # fmt: skip


def run_markdown(run: RunRecord, record_id: int) -> str:
    """What the record now holds for this run (shown on the flow run's page)."""
    lines = [
        f"### Run recorded as #{record_id}: **{run.outcome.value}**",
        "",
        f"- environment: `{run.environment}`, commit `{run.commit[:12] or '-'}` ({run.ref or '-'})",
        f"- requested by {run.requested_by or '-'} ({run.trigger})",
        f"- changes: {len(run.changes)}; plan hash `{run.plan_hash[:16] or '-'}`",
    ]
    if run.approval:
        a = run.approval
        lines.append(f"- approval: {a.decision.value} by {a.approver or '-'}: {a.reason}")
    unplanned = [c for c in run.changes if c.unplanned]
    if unplanned:
        lines.append(f"- **{len(unplanned)} unplanned change(s)**: apply made them, the approved plan did not list them")
    if run.failed_stage:
        lines.append(f"- stopped at **{run.failed_stage.value}** ({run.failed_stage.reason}): {run.reason}")
    elif run.reason:
        lines.append(f"- {run.reason}")
    return "\n".join(lines) + "\n"


def clock_time(value: datetime) -> str:
    """A moment as UTC ISO 8601 to the second: 2026-12-01T13:00:00Z."""
    return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def duration_text(value: timedelta) -> str:
    """timedelta(hours=1) -> '1h', 90 s -> '1m30s': the way driftgate.yaml writes it."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def _cell(text: str) -> str:
    """Text that cannot break a Markdown table row."""
    return text.replace("|", "\\|").replace("\n", " ")


def _fenced(diff: str) -> str:
    """A diff block whose fence no line of the diff can close."""
    lines = diff.splitlines()
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"… {len(lines) - MAX_DIFF_LINES} more lines (see `driftgate plan`)"]
    return _code_block(lines, "diff")


def _code_block(lines: list[str], language: str) -> str:
    """A fenced block that no line inside can close."""
    fence = "```"
    while any(line.lstrip().startswith(fence) for line in lines):
        fence += "`"
    return f"{fence}{language}\n" + "\n".join(lines) + f"\n{fence}"
