"""May this environment be synced now? The one place that decides (suspension, sync windows).

A suspended environment (``driftgate suspend``, kept in the record) is never
synced, whoever asks; drift checks go on. A closed sync window
(``sync.windows``, `driftgate.windows`) stops syncs too, but a person at the
CLI may pass it with ``--override-window``: the sync then goes on with every
change of its plan marked risky under the rule `WINDOW_RULE`, so it pauses for
approval under ``mode: risky`` (and ``always``).

What a run that may not sync becomes: a scheduled or self-heal sync (nobody
is waiting for it) is recorded as skipped, with the reason; a sync a person
asked for (the CLI, the Prefect UI) is refused (`SyncRefused`). Called by the
reconcile flow through its ``sync allowed`` task (tasks/guard.py), before fetch
and again right before apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from driftgate import windows
from driftgate.config import Environment
from driftgate.errors import SyncRefused
from driftgate.models import Plan, Stage, Trigger
from driftgate.store.records import Suspension

WINDOW_RULE = "sync-window"  # the risk rule of a plan applied inside a closed window
UNATTENDED = (Trigger.SCHEDULE.value, Trigger.SELF_HEAL.value)  # nobody waits for these: skipped, not refused


@dataclass(frozen=True)
class Verdict:
    """``allowed``, or why not (``reason``) and whether the run is skipped
    rather than refused; ``overridden``: the closed window a CLI sync passes."""

    allowed: bool
    reason: str = ""
    skip: bool = False
    overridden: windows.Closed | None = None


def decide(
    env: Environment,
    suspension: Suspension | None,
    *,
    trigger: str,
    override_window: bool = False,
    at: datetime | None = None,
) -> Verdict:
    """Whether a sync of ``env`` asked for by ``trigger`` may run at ``at`` (default now).
    ``override_window`` counts for the CLI only: a Run form in the Prefect UI cannot set it."""
    skip = trigger in UNATTENDED
    if suspension is not None:
        reason = f"environment {env.name!r} is {suspension.describe()}; driftgate resume {env.name} ends it"
        return Verdict(False, reason, skip=skip)
    closed = windows.closed(env.sync.windows, at)
    if closed is None:
        return Verdict(True)
    if override_window and trigger == Trigger.CLI.value:
        return Verdict(True, f"{closed.reason}: passed with --override-window", overridden=closed)
    how = "" if skip else "; a sync from the CLI may pass with --override-window, and its plan then needs approval"
    return Verdict(False, f"environment {env.name!r}: syncs are closed now, {closed.reason}{how}", skip=skip)


def refusal(verdict: Verdict) -> SyncRefused:
    """The error that ends a refused run (recorded as ``refused``)."""
    return SyncRefused(verdict.reason, stage=Stage.GATE)


def mark_overridden(plan: Plan, verdict: Verdict) -> Plan:
    """``plan`` with every change risky under `WINDOW_RULE` when the sync passes a
    closed window; unchanged otherwise (so its hash is the plan's own)."""
    if verdict.overridden is None:
        return plan
    changes = [
        c if WINDOW_RULE in c.rules else c.model_copy(update={"rules": (*c.rules, WINDOW_RULE), "risky": True})
        for c in plan.changes
    ]
    return plan.model_copy(update={"changes": tuple(changes)})
