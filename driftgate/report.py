"""Plans and runs as Markdown, for the Prefect UI (artifacts and the approval form).

Pure functions over the models; every diff in a `Plan` is already masked.
Called by the diff task and the flow's gate.
"""

from __future__ import annotations

from driftgate.models import Plan, RunRecord


def plan_markdown(plan: Plan, *, limit: int = 50) -> str:
    """The plan as a person reviews it before approving."""
    head = (
        f"### Plan for `{plan.environment}` at `{plan.revision[:12]}`\n\n"
        f"plan hash `{plan.plan_hash[:16]}`; hosts: {', '.join(plan.hosts) or '-'}\n\n"
    )
    if plan.in_sync:
        return head + "**In sync**: nothing to change.\n"
    rows = ["| host | task | action | risky |", "|---|---|---|---|"]
    rows += [
        f"| {c.target} | {c.name} | {c.action.value} | {'**yes**' if c.risky else 'no'} |"
        for c in plan.changes[:limit]
    ]
    diffs = [
        f"**{c.target}: {c.name}**\n\n```diff\n{c.diff}\n```"
        for c in plan.changes[:limit]
        if c.diff
    ]
    more = f"\n\n… and {len(plan.changes) - limit} more changes" if len(plan.changes) > limit else ""
    summary = f"**{len(plan.changes)} change(s)**, {sum(c.risky for c in plan.changes)} risky.\n\n"
    return head + summary + "\n".join(rows) + more + "\n\n" + "\n\n".join(diffs) + "\n"


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
        lines.append(f"- approval: {a['decision']} by {a.get('approver') or '-'}: {a.get('reason') or ''}")
    if run.failed_stage:
        lines.append(f"- stopped at **{run.failed_stage.value}** ({run.failed_stage.reason}): {run.reason}")
    return "\n".join(lines) + "\n"
