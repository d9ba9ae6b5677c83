"""The gate's pause: a typed approval form in the Prefect UI (or `driftgate approve`).

`wait_for_approval()` pauses the flow run with `pause_flow_run(wait_for_input=
ApprovalInput)` and turns the answer, a rejection or a timeout into an
`Approval` for one exact plan (its hash); `gate()` decides whether to wait
at all. Called from the reconcile flow's body, because only a flow can pause.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Running
from pydantic import Field

from driftgate import report
from driftgate.config import Environment
from driftgate.models import Approval, Decision, Plan
from driftgate.runlog import now

# Seconds between checks for an answer while paused; Prefect's default of 10 s
# makes every approval feel slow.
POLL_SECONDS = 2


class ApprovalInput(RunInput):
    """What an approver submits. No defaults: an empty resume must not approve."""

    decision: Decision = Field(description="approve or reject this exact plan")
    approver: str = Field(min_length=1, description="who decides (your name or login)")
    reason: str = Field(default="", description="why; kept in the record")


def gate(env: Environment, plan: Plan, *, needs_approval: bool, auto_approve: bool, requester: str) -> Approval | None:
    """The gate's decision on ``plan``: None when there is nothing to apply."""
    if plan.in_sync:
        return None
    if not needs_approval:
        return Approval(
            required=False,
            decision=Decision.APPROVE,
            reason=f"approval mode {env.approval.mode.value!r}: no approval needed for this plan",
            plan_hash=plan.plan_hash,
        )
    if auto_approve:
        return Approval(
            required=True,
            decision=Decision.APPROVE,
            approver=requester,
            reason="approved in advance (sync --yes)",
            plan_hash=plan.plan_hash,
            decided_at=now(),
        )
    return wait_for_approval(plan, env.approval.timeout)


def wait_for_approval(plan: Plan, timeout: timedelta) -> Approval:
    form = ApprovalInput.with_initial_data(description=report.plan_markdown(plan))
    try:
        answer = pause_flow_run(
            wait_for_input=form,
            timeout=max(1, int(timeout.total_seconds())),
            poll_interval=POLL_SECONDS,
            key=f"approve-{plan.plan_hash[:16]}",
        )
    except FlowPauseTimeout:
        _leave_paused_state()
        return Approval(
            required=True,
            decision=Decision.REJECT,
            reason=f"no decision within {timeout}: treated as rejected",
            plan_hash=plan.plan_hash,
            decided_at=now(),
            timed_out=True,
        )
    return Approval(
        required=True,
        decision=answer.decision,
        approver=answer.approver,
        reason=answer.reason,
        plan_hash=plan.plan_hash,
        decided_at=now(),
    )


def _leave_paused_state() -> None:
    """After a timeout the run is still Paused on the server; the record task
    cannot start in a paused run, so put it back to Running first."""
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(context.flow_run.id, Running(), force=True)


def answer_paused_run(environment: str, *, decision: str, approver: str, reason: str) -> str:
    """Resume the paused reconcile run of ``environment`` with a decision.

    The Prefect CLI cannot resume with input; this is driftgate's way (the UI's
    form is the other). Raises LookupError when no run of it is paused, and
    when several are (the UI then shows which is which).
    """
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterName,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.flow_runs import resume_flow_run

    with get_client(sync_client=True) as client:
        paused = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["reconcile"])),
            flow_run_filter=FlowRunFilter(
                name=FlowRunFilterName(any_=[environment]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
            ),
        )
    if not paused:
        raise LookupError(f"no reconcile run of {environment!r} is waiting for approval")
    if len(paused) > 1:
        names = ", ".join(str(r.id) for r in paused)
        raise LookupError(f"{len(paused)} runs of {environment!r} are paused ({names}): answer them in the Prefect UI")
    run = paused[0]
    ApprovalInput(decision=Decision(decision), approver=approver, reason=reason)  # validate before sending
    resume_flow_run(run.id, run_input={"decision": decision, "approver": approver, "reason": reason})
    return f"{run.name} ({run.id})"
