"""Collects what a run did, stage by stage, into one `RunRecord`.

The flow and the CLI's read-only plan both fill a `RunLog` as they go and call
`finish()` at the end, in a ``finally``, so failed, rejected and no-op runs
end in the record just like successful ones. The outcome is derived here,
in one place, from what was collected.
"""

from __future__ import annotations

import getpass
import os
from datetime import datetime, timezone

from driftgate.errors import DriftgateError
from driftgate.models import (
    ApplyResult,
    Approval,
    Checkout,
    Mode,
    Outcome,
    Plan,
    RunRecord,
    Stage,
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


class RunLog:
    def __init__(
        self,
        environment: str,
        *,
        mode: Mode,
        trigger: str,
        requested_by: str | None = None,
        flow_run_id: str | None = None,
        masker: Masker | None = None,
    ) -> None:
        self.environment = environment
        self.mode = mode
        self.trigger = trigger
        self.requested_by = requested_by or current_user()
        self.flow_run_id = flow_run_id
        self.masker = masker or Masker()
        self.started_at = now()
        self.checkout: Checkout | None = None
        self.plan: Plan | None = None
        self.approval: Approval | None = None
        self.result: ApplyResult | None = None
        self.failed_stage: Stage | None = None
        self.reason = ""

    def fail(self, exc: BaseException, *, stage: Stage | None = None) -> None:
        """Note where and why the run stopped; the message is masked."""
        if isinstance(exc, DriftgateError):
            self.failed_stage = stage or exc.stage
            self.reason = self.masker(str(exc))
        else:
            self.failed_stage = stage or self._current_stage()
            self.reason = self.masker(f"{type(exc).__name__}: {exc}")

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
        if self.failed_stage is not None:
            return Outcome.FAILED
        if self.result is not None and not self.result.succeeded:
            return Outcome.FAILED
        if self.plan is None:
            return Outcome.FAILED
        if self.plan.in_sync:
            return Outcome.IN_SYNC
        if self.mode == Mode.PLAN:
            return Outcome.DRIFT
        return Outcome.APPLIED if self.result is not None else Outcome.FAILED

    def finish(self) -> RunRecord:
        if self.result is not None and not self.result.succeeded and self.failed_stage is None:
            self.failed_stage = Stage.APPLY
            failed = [
                f"{t.host}: {t.task}: {t.message or t.status}"
                for h in self.result.hosts
                for t in h.tasks
                if t.status in ("failed", "unreachable")
            ]
            self.reason = self.masker("; ".join(failed) or "ansible-playbook reported failures")
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
            changes=[c.model_dump(mode="json") for c in self.plan.changes] if self.plan else [],
            approval=self.approval.model_dump(mode="json") if self.approval else None,
            hosts=[h.model_dump(mode="json") for h in self.result.hosts] if self.result else [],
            flow_run_id=self.flow_run_id,
            failed_stage=self.failed_stage,
            reason=self.reason,
        )
