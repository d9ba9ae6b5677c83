"""The gate: pause a run for a person's decision on one exact plan.

In the flow, `gate()` decides whether a plan must wait (the risk policy),
pauses the run with a typed form (`ApprovalInput`, flows/approval_input.py)
whose approver field only accepts the environment's approvers, and turns the
answer, a rejection or a timeout into an `Approval` bound to the plan's hash.
Right before apply it computes the plan again; when the plan changed while
the run waited (a new commit, new drift), it pauses again and says why.
Called from the reconcile flow's body, because only a flow can pause.

Where ``approval.require_signature`` is on, the form also asks for the
approver's SSH signature over the run's statement (driftgate/signing.py): the
form shows the statement and the command that signs it, the flow verifies the
answer before apply (a refused one leaves the run paused, saying why) and
publishes its verdict, and the record keeps the evidence.

Each pause publishes a summary and its verdict on an answer for the API the
CLI uses outside the flow (`driftgate approvals`, `driftgate approve`):
flows/approvals_api.py, whose names are re-exported here for callers that
import them from this module.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.states import Running
from prefect.runtime import flow_run
from pydantic import Field, create_model

from driftgate import commits, policy, report, signing
from driftgate.config import Environment
from driftgate.errors import PermanentError
from driftgate.models import Approval, Decision, Plan, SignatureEvidence, Stage, Trigger
from driftgate.runlog import now
from driftgate.signing import SignatureRefused, SigningUnavailable, Statement
from driftgate.flows.approval_input import (
    APPROVER_HELP,
    INFO_PREFIX,
    VERDICT_PREFIX,
    ApprovalInput,
    SignedApprovalInput,
)
from driftgate.flows.links import this_run_url
from driftgate.flows.approvals_api import (  # noqa: F401  (re-exported: the CLI's API, formerly here)
    ApproverRefused,
    NotPaused,
    PausedRun,
    UnknownRun,
    answer_run,
    await_verdict,
    find_paused_run,
    paused_runs,
    sign_answer,
)
from driftgate.flows.requests import PauseNotice, RunRequest
from driftgate.tasks import decide_gate, load_approval_signers
from driftgate.tasks.notify import notify

# Seconds between checks for an answer while paused; Prefect's default of 10 s
# makes every approval feel slow.
POLL_SECONDS = 2
# A plan that differs every time it is computed (a task whose diff holds a
# timestamp) would otherwise ask again for ever.
MAX_ROUNDS = 5
IN_ADVANCE = "approved in advance (sync --yes)"
IN_ADVANCE_SIGNED = "approved in advance (sync --yes --key)"


def gate(
    env: Environment,
    plan: Plan,
    *,
    replan: Callable[[], Plan],
    request: RunRequest,
) -> tuple[Plan, Approval | None]:
    """The plan to apply and its approval (None: nothing to apply).

    A person's approval is for one exact plan: right before apply the plan is
    computed again with ``replan`` (fetch, render, diff), and when its hash
    differs the run asks again with the new plan, saying why. A pre-approval
    (``driftgate sync --yes``) is an approval by the CLI's user under the
    same approver rules; it never comes from a run's parameters.
    """
    requester = request.requested_by
    pre_approver = requester if request.pre_approve and request.trigger == Trigger.CLI else None
    approval, waited = _decide(
        env, plan, pre_approver=pre_approver, requester=requester, signing_key=request.signing_key, on_pause=request.on_pause
    )
    for _ in range(MAX_ROUNDS):
        if approval is None or not (approval.approved and waited):
            return plan, approval
        fresh = replan()
        if fresh.plan_hash == plan.plan_hash:
            return plan, approval
        why = plan_changed(plan, fresh, approval)
        get_run_logger().warning("%s: asking again", why)
        plan = fresh
        approval, waited = _decide(env, plan, pre_approver=None, requester=requester, asked_again=why, on_pause=request.on_pause)
    raise PermanentError(
        f"environment {env.name!r}: the plan changed {MAX_ROUNDS} times while waiting for approval; "
        "nothing was applied: start a new sync when it is stable",
        stage=Stage.GATE,
    )


def plan_changed(old: Plan, new: Plan, approval: Approval) -> str:
    """Why an approval no longer holds, in words for the approver."""
    by = f"{approval.approver} approved plan {old.plan_hash[:12]}"
    if new.revision != old.revision:
        return f"the plan changed after {by}: new commit {new.revision[:12]} (was {old.revision[:12]})"
    return f"the plan changed after {by}: the live state changed (new drift) at commit {new.revision[:12]}"


def _decide(
    env: Environment, plan: Plan, *, pre_approver: str | None, requester: str, asked_again: str = "",
    signing_key: Path | None = None, on_pause: Callable[[PauseNotice], None] | None = None,
) -> tuple[Approval | None, bool]:
    """The gate's verdict on one plan, and whether a person was waited for.
    ``signing_key`` signs a pre-approval where approvals must be signed."""
    if plan.in_sync:
        return None, False
    if not decide_gate(env, plan):
        reason = f"approval mode {env.approval.mode.value!r}: no approval needed for this plan"
        return Approval(required=False, decision=Decision.APPROVE, reason=reason, plan_hash=plan.plan_hash), False
    if pre_approver is not None:
        refusal = policy.approver_refusal(pre_approver, env.approval, requester=requester)
        evidence = None
        if refusal is None and env.approval.require_signature:
            refusal, evidence = _signed_in_advance(env, plan, pre_approver, signing_key)
        if refusal is None:
            approval = Approval(
                required=True,
                decision=Decision.APPROVE,
                approver=pre_approver,
                reason=IN_ADVANCE_SIGNED if evidence else IN_ADVANCE,
                plan_hash=plan.plan_hash,
                decided_at=now(),
                signature=evidence,
            )
            return approval, False
        get_run_logger().warning("--yes does not apply: %s; waiting for an approver", refusal)
    return wait_for_approval(env, plan, requester=requester, asked_again=asked_again, on_pause=on_pause), True


def approval_form(env: Environment, *, requester: str) -> type[ApprovalInput]:
    """`ApprovalInput` (with a signature field when the environment requires
    one) whose approver field accepts only who may decide.

    The rule is in the form's JSON schema, so the Prefect server itself
    refuses anyone else (from the UI or the API) and the run stays paused.
    """
    base = SignedApprovalInput if env.approval.require_signature else ApprovalInput
    names = policy.deciders(env.approval, requester=requester)
    if names is not None:
        # An empty enum is not a valid schema; "not {}" accepts nothing.
        extra: dict[str, Any] | None = {"enum": names} if names else {"not": {}}
        help_text = f"{APPROVER_HELP}: one of {', '.join(names) or 'nobody (only the requester is an approver)'}"
    elif env.approval.forbid_self_approval:
        extra = {"not": {"enum": [requester]}}
        help_text = f"{APPROVER_HELP}; not {requester}, who requested this run"
    else:
        return base
    field = Field(min_length=1, description=help_text, json_schema_extra=extra)
    return create_model(base.__name__, __base__=base, approver=(str, field))


def wait_for_approval(
    env: Environment, plan: Plan, *, requester: str, asked_again: str = "", on_pause: Callable[[PauseNotice], None] | None = None
) -> Approval:
    """Pause until someone allowed decides, or the environment's timeout passes.

    An answer from someone the policy refuses (possible only through an old
    form), or without a valid signature where one is required, does not
    count: the run pauses again for the rest of the time, saying why.
    """
    logger = get_run_logger()
    timeout = env.approval.timeout
    deadline = time.monotonic() + timeout.total_seconds()
    # A signed statement is valid until this run stops waiting for it.
    expires = (now() + timeout).replace(microsecond=0)
    if env.approval.require_signature:
        load_approval_signers(env, plan.revision)  # no usable allowed_signers: fail now, not after a wait
    note = asked_again
    url = this_run_url()
    where = f" ({url})" if url else ""
    notify(env, "approval", f"{env.name}: a sync waits for approval",
           f"{report.plan_summary(plan)} at {plan.revision[:12]}, requested by {requester}{where}; "
           f"until {report.clock_time(expires)}")
    if on_pause is not None:  # `driftgate sync` says so in its terminal
        on_pause(PauseNotice(
            environment=env.name, flow_run=str(flow_run.id), url=url or "", summary=report.plan_summary(plan),
            deciders=_who_may_decide(env, requester), deadline=expires, timeout=timeout, asked_again=asked_again,
        ))  # fmt: skip
    while True:
        remaining = int(deadline - time.monotonic())
        if remaining < 1:
            return _timed_out(plan, timeout)
        key = f"approve-{plan.plan_hash[:12]}-{uuid.uuid4().hex[:8]}"
        _publish_summary(env, plan, key=key, requester=requester, asked_again=note, expires=expires)
        description = report.approval_markdown(
            plan,
            requester=requester,
            deciders=policy.deciders(env.approval, requester=requester),
            forbid_self_approval=env.approval.forbid_self_approval,
            timeout=timeout,
            deadline=expires,
            asked_again=note,
            signing=_signing_help(env, plan, requester=requester, expires=expires),
        )
        form = approval_form(env, requester=requester).with_initial_data(description=description)
        logger.info("waiting for approval of plan %s (%s)", plan.plan_hash[:12], report.plan_summary(plan))
        try:
            answer = pause_flow_run(wait_for_input=form, timeout=remaining, poll_interval=POLL_SECONDS, key=key)
        except FlowPauseTimeout:
            _leave_paused_state()
            return _timed_out(plan, timeout)
        refusal = policy.approver_refusal(answer.approver, env.approval, requester=requester)
        evidence = None
        if refusal is None and env.approval.require_signature:
            refusal, evidence = _check_signature(env, plan, answer, expires=expires)
        _publish_verdict(key, refusal)
        if refusal is None:
            signed = f" (signed with {evidence.fingerprint})" if evidence else ""
            logger.info("%s: %s by %s%s", plan.plan_hash[:12], answer.decision.value, answer.approver, signed)
            return Approval(
                required=True,
                decision=answer.decision,
                approver=answer.approver,
                reason=answer.reason,
                plan_hash=plan.plan_hash,
                decided_at=now(),
                signature=evidence,
            )
        logger.warning("refused the answer of %s: %s; still waiting", answer.approver, refusal)
        note = f"the answer from {answer.approver} was refused: {refusal}"


def _who_may_decide(env: Environment, requester: str) -> str:
    """'alice, carol', 'anyone', 'anyone but bob' (forbid_self_approval) or 'nobody'."""
    names = policy.deciders(env.approval, requester=requester)
    if names is not None:
        return ", ".join(names) or "nobody"
    return "anyone" + (f" but {requester}" if env.approval.forbid_self_approval else "")


def expected_statement(env: Environment, plan: Plan, *, decision: str, approver: str, expires: datetime) -> Statement:
    """The statement an answer by ``approver`` deciding ``decision`` on this run must be a signature of."""
    return Statement(
        environment=env.name, flow_run=str(flow_run.id), plan=plan.plan_hash, commit=plan.revision,
        decision=decision, approver=approver, expires=expires,
    )  # fmt: skip


def _signed_in_advance(
    env: Environment, plan: Plan, approver: str, key: Path | None
) -> tuple[str | None, SignatureEvidence | None]:
    """A pre-approval (``sync --yes --key``) signed in this, the CLI's, process
    with the user's key (ssh-keygen may ask for a passphrase or a touch), then
    checked exactly like an answer to the form."""
    if key is None:
        return f"environment {env.name!r} requires signed approvals: give --key with --yes", None
    expires = (now() + env.approval.timeout).replace(microsecond=0)
    try:
        statement = expected_statement(env, plan, decision=Decision.APPROVE.value, approver=approver, expires=expires)
        answer = signing.sign(statement.text(), key)
    except ValueError as exc:
        return f"malformed: {exc}", None
    except SigningUnavailable as exc:
        return str(exc), None
    allowed, source = load_approval_signers(env, plan.revision)
    try:
        return None, signing.check_answer(statement, answer, allowed, now=now(), source=source)
    except (SignatureRefused, SigningUnavailable) as exc:
        return str(exc), None


def _signing_help(env: Environment, plan: Plan, *, requester: str, expires: datetime) -> str:
    """The statement and the one command that signs it, for the form."""
    if not env.approval.require_signature:
        return ""
    names = policy.deciders(env.approval, requester=requester)
    example = next((n for n in names or [] if signing.PRINCIPAL.match(n)), "YOUR_NAME")
    template = expected_statement(env, plan, decision="approve", approver=example, expires=expires)
    return report.signature_markdown(template.text(), signing.sign_command(template), run_id=str(flow_run.id))


def _check_signature(env: Environment, plan: Plan, answer: Any, *, expires: datetime) -> tuple[str | None, SignatureEvidence | None]:
    """(why the answer's signature is refused, or None; the evidence to record)."""
    try:
        expected = expected_statement(env, plan, decision=answer.decision.value, approver=answer.approver, expires=expires)
    except ValueError as exc:
        return f"malformed: {exc}", None
    allowed, source = load_approval_signers(env, plan.revision)  # afresh: a key removed while waiting no longer counts
    try:
        return None, signing.check_answer(expected, getattr(answer, "signature", ""), allowed, now=now(), source=source)
    except (SignatureRefused, SigningUnavailable) as exc:
        return str(exc), None


def _timed_out(plan: Plan, timeout: timedelta) -> Approval:
    return Approval(
        required=True,
        decision=Decision.REJECT,
        reason=f"no decision within {report.duration_text(timeout)} (approval.timeout); nothing applied",
        plan_hash=plan.plan_hash,
        decided_at=now(),
        timed_out=True,
    )


def _publish_summary(env: Environment, plan: Plan, *, key: str, requester: str, asked_again: str, expires: datetime) -> None:
    """What `driftgate approvals` and `driftgate approve` need to know about this
    pause (with what a signed statement binds: this flow run, plan, commit, expiry)."""
    from prefect.input import create_flow_run_input

    create_flow_run_input(
        key=INFO_PREFIX + key,
        value={
            "environment": env.name,
            "flow_run": str(flow_run.id),
            "commit": plan.revision,
            "plan_hash": plan.plan_hash,
            "summary": report.plan_summary(plan),
            "requester": requester,
            "deciders": policy.deciders(env.approval, requester=requester),
            "approvers": policy.describe_approvers(env.approval),
            "forbid_self_approval": env.approval.forbid_self_approval,
            "asked_again": asked_again,
            "require_signature": env.approval.require_signature,
            "expires": expires.isoformat(),
            "commits": commits.lines(plan.commits) if plan.commits else [],
            "commits_heading": commits.heading(plan.commits) if plan.commits else "",
        },
    )


def _publish_verdict(key: str, refusal: str | None) -> None:
    """Whether the answer to pause ``key`` was taken, for `driftgate approve`
    (the server cannot check a signature; the flow tells the sender)."""
    from prefect.input import create_flow_run_input

    try:
        create_flow_run_input(key=f"{VERDICT_PREFIX}{key}", value={"accepted": refusal is None, "refusal": refusal or ""})
    except Exception as exc:  # noqa: BLE001 - e.g. someone took the key through the API first: the gate goes on
        get_run_logger().warning("could not publish the verdict on pause %s for `driftgate approve`: %s", key, exc)


def _leave_paused_state() -> None:
    """After a timeout the run is still Paused on the server; the record task
    cannot start in a paused run, so put it back to Running first."""
    context = FlowRunContext.get()
    assert context is not None and context.flow_run is not None
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(context.flow_run.id, Running(), force=True)
