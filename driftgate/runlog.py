"""Collects what a run did, stage by stage, into one `RunRecord`.

The flow and the CLI's read-only plan both fill a `RunLog` as they go and call
`finish()` at the end, in a ``finally``, so failed, rejected and no-op runs
end in the record just like successful ones. The outcome is derived here,
in one place, from what was collected. The flow also records `start()` first,
so a run whose process dies is still in the record (as interrupted).
"""

from __future__ import annotations

import getpass
import os
from datetime import datetime, timezone
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from uuid import uuid4

from driftgate.errors import DriftgateError, SyncRefused
from driftgate.models import (
    ApplyResult,
    Approval,
    Checkout,
    Outcome,
    Plan,
    RecordedChange,
    RunMode,
    RunPurpose,
    RunRecord,
    RunStart,
    Stage,
    TaskStatus,
)
from driftgate.secrets import Masker


def now() -> datetime:
    return datetime.now(timezone.utc)


def current_user() -> str:
    """Who asked for a run, as the OS knows them (overridable with DRIFTGATE_USER)."""
    try:
        return os.environ.get("DRIFTGATE_USER") or getpass.getuser()
    except OSError:  # no passwd entry (containers)
        return f"uid:{os.getuid()}"


@lru_cache(maxsize=1)
def driftgate_version() -> str:
    try:
        return version("driftgate")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


class RunLog:
    def __init__(
        self,
        environment: str,
        *,
        purpose: RunPurpose,
        trigger: str,
        requested_by: str | None = None,
        flow_run_id: str | None = None,
        flow_run_url: str | None = None,
        masker: Masker | None = None,
    ) -> None:
        self.run_id = uuid4().hex  # ties the run's start and end together in the record
        self.environment = environment
        self.purpose = purpose
        self.mode = purpose.mode  # follows from the purpose: the two cannot disagree
        self.trigger = trigger
        self.requested_by = requested_by or current_user()
        self.flow_run_id = flow_run_id
        self.flow_run_url = flow_run_url
        self.masker = masker or Masker()
        self.started_at = now()
        self.checkout: Checkout | None = None
        self.plan: Plan | None = None
        self.approval: Approval | None = None
        self.result: ApplyResult | None = None
        self.failed_stage: Stage | None = None
        self.reason = ""
        self.skipped = False
        # Where the run was aimed when not at its ref's head (RunRecord.ORIGIN).
        self.revision = ""
        self.rolled_back_from = ""
        self.promoted_from = ""
        self.refused = False

    def start(self) -> RunStart:
        """What the record notes when the run starts (before fetch)."""
        return RunStart(
            run_id=self.run_id,
            environment=self.environment,
            purpose=self.purpose,
            mode=self.mode,
            trigger=self.trigger,
            requested_by=self.requested_by,
            started_at=self.started_at,
            flow_run_id=self.flow_run_id,
            flow_run_url=self.flow_run_url,
            version=driftgate_version(),
        )

    def fail(self, exc: BaseException, *, stage: Stage | None = None) -> None:
        """Note where and why the run stopped; the message is masked."""
        if isinstance(exc, DriftgateError):
            self.refused = isinstance(exc, SyncRefused)
            self.failed_stage = stage or exc.stage
            self.reason = self.masker(str(exc))
        else:
            self.failed_stage = stage or self._current_stage()
            self.reason = self.masker(f"{type(exc).__name__}: {exc}")

    def skip(self, reason: str) -> None:
        """A run that stays clear: a drift check meeting a sync (no finding, whatever
        its diff saw), or a scheduled or self-heal sync that may not run now."""
        self.skipped = True
        self.plan = None  # maybe a half-applied state: neither drift nor in sync
        self.reason = self.masker(reason)

    def _current_stage(self) -> Stage:
        """The stage after the last one that produced something."""
        if self.checkout is None:
            return Stage.FETCH
        if self.plan is None:
            return Stage.DIFF
        if self.approval is None:
            return Stage.GATE
        return Stage.APPLY

    @property
    def outcome(self) -> Outcome:
        if self.approval is not None and not self.approval.approved:
            return Outcome.REJECTED
        if self.refused:
            return Outcome.REFUSED
        if self.failed_stage is not None:
            return Outcome.FAILED
        if self.skipped:
            return Outcome.SKIPPED
        if self.result is not None and not self.result.succeeded:
            return Outcome.FAILED
        if self.plan is None:
            return Outcome.FAILED
        if self.plan.in_sync:
            return Outcome.IN_SYNC
        if self.mode == RunMode.PLAN:
            return Outcome.DRIFT
        return Outcome.APPLIED if self.result is not None else Outcome.FAILED

    def finish(self) -> RunRecord:
        changes = self._changes()
        if self.result is not None and not self.result.succeeded and self.failed_stage is None:
            self.failed_stage = Stage.APPLY
            self.reason = self.masker("; ".join(self.result.failures) or "ansible-playbook reported failures")
        unplanned = [f"{c.target}: {c.name}" for c in changes if c.unplanned]
        if unplanned:
            said = f"{len(unplanned)} unplanned change{'s' if len(unplanned) != 1 else ''}: {', '.join(unplanned)}"
            if said not in self.reason:  # finish() may be called again: say it once
                self.reason = self.masker(f"{self.reason}; with {said}" if self.reason else f"applied, with {said}")
        return RunRecord(
            environment=self.environment,
            mode=self.mode,
            trigger=self.trigger,
            outcome=self.outcome,
            started_at=self.started_at,
            finished_at=now(),
            requested_by=self.requested_by,
            repo=self.checkout.repo if self.checkout else "",
            ref=self.checkout.ref if self.checkout else "",
            commit=self.checkout.commit if self.checkout else "",
            plan_hash=self.plan.plan_hash if self.plan else "",
            changes=changes,
            approval=self.approval,
            hosts=list(self.result.hosts) if self.result else [],
            flow_run_id=self.flow_run_id,
            failed_stage=self.failed_stage,
            reason=self.reason,
            run_id=self.run_id,
            purpose=self.purpose,
            commit_author=self.masker(_commit_author(self.checkout)),
            signed_by=self.checkout.signed_by if self.checkout else None,
            flow_run_url=self.flow_run_url,
            version=driftgate_version(),
            revision=self.revision,
            rolled_back_from=self.rolled_back_from,
            promoted_from=self.promoted_from,
        )

    def _changes(self) -> list[RecordedChange]:
        """The plan's changes, each with what apply did to it (``result``) and
        its ``health`` (both "" when nothing was applied), then every change
        apply made that the plan did not list, marked ``unplanned``.

        A change finds its results by its `Change.identity`, never by name: an
        Ansible task by host and ``task_path`` (where the task is defined, and
        its run count), so two tasks of one name, or one task on several hosts,
        each find their own; a Kubernetes object by Kind/namespace/name, with a
        result per step (apply or prune, then health)."""
        if self.plan is None:
            return []
        tasks = [t for host in (self.result.hosts if self.result else ()) for t in host.tasks]
        by_change: dict[tuple[str, str], TaskStatus] = {}
        by_step: dict[tuple[tuple[str, str], str], TaskStatus] = {}
        for t in tasks:
            by_change.setdefault(t.change_identity, t.status)
            by_step.setdefault((t.change_identity, t.task), t.status)
        changes = []
        for change in self.plan.changes:
            if change.kind:  # Kubernetes: the object's apply/prune step, and its health check
                step = "prune" if change.action.value == "delete" else "apply"
                result = by_step.get((change.identity, step), "")
                health = by_step.get((change.identity, "health"), "")
            else:
                result, health = by_change.get(change.identity, ""), ""
            changes.append(RecordedChange(**dict(change), result=result, health=health))
        planned = {c.identity for c in self.plan.changes if not c.kind}
        for change in self.result.changes if self.result else ():
            if change.identity not in planned:
                changes.append(RecordedChange(**dict(change), result=TaskStatus.CHANGED, unplanned=True))
        return changes


def _commit_author(checkout: Checkout | None) -> str:
    """``Name <email>`` of the checked-out commit, as fetch read it."""
    return checkout.author if checkout is not None else ""
