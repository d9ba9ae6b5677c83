"""The gate: pause a run for a person's decision on one exact plan, and find
and answer paused runs (`driftgate approvals` / `driftgate approve`).

In the flow, `gate()` decides whether a plan must wait (the risk policy),
pauses the run with a typed form (`ApprovalInput`) whose approver field only
accepts the environment's approvers, and turns the answer, a rejection or a
timeout into an `Approval` bound to the plan's hash. Right before apply it
computes the plan again; when the plan changed while the run waited (a new
commit, new drift), it pauses again and says why. Called from the reconcile
flow's body, because only a flow can pause.

Where ``approval.require_signature`` is on, the form also asks for the
approver's SSH signature over the run's statement (driftgate/signing.py): the
form shows the statement and the command that signs it, the flow verifies the
answer before apply (a refused one leaves the run paused, saying why) and
publishes its verdict, and the record keeps the evidence.

Outside the flow, `paused_runs()`, `find_paused_run()`, `answer_run()`,
`sign_answer()` and `await_verdict()` are what the CLI uses: Prefect's own CLI
cannot resume a run with input, and Prefect does not record who resumed a
run, so driftgate checks and records the approver itself.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from prefect.states import Running
from prefect.runtime import flow_run
from pydantic import Field, create_model

from driftgate import policy, report, signing
from driftgate.config import Environment
from driftgate.errors import PermanentError
from driftgate.models import Approval, Decision, Plan, SignatureEvidence, Stage, Trigger
from driftgate.runlog import now
from driftgate.signing import SignatureRefused, SigningUnavailable, Statement
from flows.links import this_run_url
from flows.requests import RunRequest
from tasks import decide_gate, load_approval_signers
from tasks.notify import notify

# Seconds between checks for an answer while paused; Prefect's default of 10 s
# makes every approval feel slow.
POLL_SECONDS = 2
# A plan that differs every time it is computed (a task whose diff holds a
# timestamp) would otherwise ask again for ever.
MAX_ROUNDS = 5
IN_ADVANCE = "approved in advance (sync --yes)"
IN_ADVANCE_SIGNED = "approved in advance (sync --yes --key)"
INFO_PREFIX = "driftgate-"  # flow run input key of a pause's summary, for `driftgate approvals`
VERDICT_PREFIX = "driftgate-verdict-"  # ... and of the flow's verdict on the answer to a pause

APPROVER_HELP = "your name as the environment's approvers list it; the record names you as who decided"


class ApprovalInput(RunInput):
    """What an approver submits. No defaults: an empty resume must not approve."""

    decision: Decision = Field(
        description="approve: apply exactly the plan shown above (asked again if it changes); "
        "reject: apply nothing and end the run as rejected"
    )
    approver: str = Field(min_length=1, description=APPROVER_HELP)
    reason: str = Field(default="", description="why you decided so; kept in the record")


SIGNATURE_HELP = (
    "what the command above printed: -----BEGIN SSH SIGNATURE----- ... (the statement before it may be pasted too); "
    "checked against the environment's allowed_signers for the approver named"
)


class SignedApprovalInput(ApprovalInput):
    """The answer in an environment with approval.require_signature."""

    signature: str = Field(min_length=1, description=SIGNATURE_HELP, json_schema_extra={"format": "textarea"})


# ---------------------------------------------------------------- in the flow


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
    approval, waited = _decide(env, plan, pre_approver=pre_approver, requester=requester, signing_key=request.signing_key)
    for _ in range(MAX_ROUNDS):
        if approval is None or not (approval.approved and waited):
            return plan, approval
        fresh = replan()
        if fresh.plan_hash == plan.plan_hash:
            return plan, approval
        why = plan_changed(plan, fresh, approval)
        get_run_logger().warning("%s: asking again", why)
        plan = fresh
        approval, waited = _decide(env, plan, pre_approver=None, requester=requester, asked_again=why)
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
    signing_key: Path | None = None,
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
    return wait_for_approval(env, plan, requester=requester, asked_again=asked_again), True


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


def wait_for_approval(env: Environment, plan: Plan, *, requester: str, asked_again: str = "") -> Approval:
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
           f"{report.plan_summary(plan)} at {plan.revision[:12]}, requested by {requester}{where}")
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


# ---------------------------------------------------------------- outside the flow


class UnknownRun(LookupError):
    """No flow run by that id, or no paused run of that environment."""


class NotPaused(LookupError):
    """The run exists but is not waiting for approval (any more)."""


class ApproverRefused(PermissionError):
    """The approver may not decide this run; it stays paused."""


@dataclass(frozen=True)
class PausedRun:
    """A reconcile run waiting for approval, as `driftgate approvals` lists it."""

    id: str
    environment: str
    waiting_since: datetime | None
    pause_key: str
    commit: str = ""
    plan_hash: str = ""
    summary: str = ""
    requester: str = ""
    deciders: list[str] | None = None
    approvers: str = "anyone"
    forbid_self_approval: bool = False
    asked_again: str = ""
    flow_run: str = ""
    require_signature: bool = False
    expires: str = ""  # ISO 8601 UTC: when a signed statement for this pause stops counting

    def statement(self, *, decision: str, approver: str) -> Statement:
        """What ``approver`` signs to decide this pause (ValueError if the name cannot be a principal)."""
        return Statement(
            environment=self.environment, flow_run=self.id, plan=self.plan_hash, commit=self.commit,
            decision=decision, approver=approver, expires=datetime.fromisoformat(self.expires),
        )  # fmt: skip


def paused_runs() -> list[PausedRun]:
    """Every paused reconcile run, oldest first."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["reconcile"])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
            ),
            sort=FlowRunSort.START_TIME_ASC,
        )
    return [_paused_run(run) for run in runs]


def _paused_run(run: Any) -> PausedRun:
    from prefect.input import read_flow_run_input

    pause_key = str(run.state.state_details.pause_key or "") if run.state else ""
    info = read_flow_run_input(INFO_PREFIX + pause_key, flow_run_id=run.id) if pause_key else None
    known = {k: v for k, v in (info or {}).items() if k in PausedRun.__dataclass_fields__}
    known.setdefault("environment", run.parameters.get("environment", run.name))
    return PausedRun(
        id=str(run.id), waiting_since=run.state.timestamp if run.state else None, pause_key=pause_key, **known
    )


def find_paused_run(ref: str) -> PausedRun:
    """The paused run that ``ref`` names: a flow run id (or a unique start of
    one), or an environment with exactly one paused run."""
    try:
        run_id = uuid.UUID(ref)
    except ValueError:
        run_id = None
    if run_id is not None:
        return _paused_run_by_id(run_id)
    paused = paused_runs()
    matches = [r for r in paused if r.environment == ref] or [r for r in paused if len(ref) >= 6 and r.id.startswith(ref)]
    if not matches:
        raise UnknownRun(
            f"no reconcile run of {ref!r} is waiting for approval"
            + (f" (paused: {', '.join(sorted({r.environment for r in paused}))})" if paused else "")
        )
    if len(matches) > 1:
        ids = ", ".join(r.id for r in matches)
        raise UnknownRun(f"{len(matches)} runs of {ref!r} are paused ({ids}): name one by its id")
    return matches[0]


def _paused_run_by_id(run_id: uuid.UUID) -> PausedRun:
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            run = client.read_flow_run(run_id)
        except ObjectNotFound:
            raise UnknownRun(f"no flow run {run_id} on this Prefect server (driftgate approvals lists paused runs)") from None
        flow = client.read_flow(run.flow_id)
    if flow.name != "reconcile":
        raise UnknownRun(f"flow run {run_id} is a run of {flow.name!r}, not a driftgate reconcile run")
    if not (run.state and run.state.is_paused()):
        state = run.state.name if run.state else "unknown"
        raise NotPaused(f"run {run_id} ({run.name}) is {state}: it is not waiting for approval")
    return _paused_run(run)


def answer_run(run: PausedRun, *, decision: str, approver: str, reason: str, signature: str = "") -> None:
    """Resume ``run`` with a decision, after checking the approver.

    Raises ApproverRefused (the run stays paused), NotPaused (someone else
    answered first, or it timed out) or ValueError (an invalid answer).
    ``signature``: the signed statement (see `sign_answer`) where the run requires one.
    """
    from prefect.exceptions import NotPausedError
    from prefect.flow_runs import resume_flow_run

    if run.require_signature and not signature:
        raise ApproverRefused(
            f"run {run.id} of {run.environment!r} requires a signed answer: pass --key ~/.ssh/id_ed25519; it stays paused"
        )
    form = SignedApprovalInput if run.require_signature else ApprovalInput
    extra = {"signature": signature} if run.require_signature else {}
    answer = form(decision=Decision(decision), approver=approver, reason=reason, **extra)  # validate before sending
    refusal = _refusal(run, approver)
    if refusal:
        raise ApproverRefused(f"{refusal}; run {run.id} of {run.environment!r} stays paused")
    try:
        resume_flow_run(uuid.UUID(run.id), run_input=answer.model_dump(mode="json"))
    except (NotPausedError, FlowPauseTimeout):
        raise NotPaused(f"run {run.id} of {run.environment!r} is no longer waiting for approval") from None
    except RuntimeError as exc:  # the server refused the input (its schema): the run stays paused
        raise ApproverRefused(f"the Prefect server refused the answer for run {run.id}: {exc}") from None


def sign_answer(run: PausedRun, *, decision: str, approver: str, key: str) -> str:
    """The statement for this pause and ``approver``'s signature of it with
    ``key`` (ssh-keygen; may ask for a passphrase or a touch), as one answer."""
    try:
        statement = run.statement(decision=decision, approver=approver)
    except ValueError as exc:
        raise ApproverRefused(f"cannot sign for run {run.id}: {exc}") from None
    if statement.expires <= now():
        raise NotPaused(f"run {run.id} of {run.environment!r} stopped waiting at {statement.expires:%Y-%m-%d %H:%M:%S} UTC")
    try:
        return statement.text() + signing.sign(statement.text(), key)
    except SigningUnavailable as exc:
        raise ApproverRefused(str(exc)) from None


def await_verdict(run: PausedRun, *, timeout: float = 60) -> None:
    """Wait until the flow has checked the answer to ``run``'s pause: return if
    it was taken, raise ApproverRefused (the run stays paused) with the flow's
    one-line reason if not. Only the flow can check a signature."""
    from prefect.input import read_flow_run_input

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        verdict = read_flow_run_input(f"{VERDICT_PREFIX}{run.pause_key}", flow_run_id=uuid.UUID(run.id))
        if verdict is not None:
            if verdict.get("accepted"):
                return
            raise ApproverRefused(f"run {run.id} of {run.environment!r} refused the answer: {verdict.get('refusal')}; it stays paused")
        time.sleep(0.3)
    raise NotPaused(f"run {run.id} of {run.environment!r} has not checked the answer within {timeout:.0f} s: see `driftgate approvals`")


def _refusal(run: PausedRun, approver: str) -> str | None:
    """The policy check, from what the paused run published about itself."""
    if run.forbid_self_approval and approver == run.requester:
        return f"{approver!r} requested this run and may not decide it (forbid_self_approval)"
    if run.deciders is not None and approver not in run.deciders:
        return f"{approver!r} may not decide runs of {run.environment!r} (approvers: {run.approvers})"
    return None

