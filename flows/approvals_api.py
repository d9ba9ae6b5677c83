"""Paused runs, from outside the flow: what `driftgate approvals` lists and
how `driftgate approve` answers one.

`paused_runs()` and `find_paused_run()` read what each paused reconcile run
published about its pause (flows/approval_input.py); `answer_run()` checks
the approver against that and resumes the run with the answer;
`sign_answer()` signs it where the environment requires signed approvals, and
`await_verdict()` waits for the flow's verdict on it (only the flow can check
a signature). Prefect's own CLI cannot resume a run with input, and Prefect
does not record who resumed a run, so driftgate checks and records the
approver itself. Called by the CLI (driftgate/cli.py) and the tests.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prefect.client.orchestration import get_client
from prefect.exceptions import FlowPauseTimeout

from driftgate import signing
from driftgate.models import Decision
from driftgate.runlog import now
from driftgate.signing import SigningUnavailable, Statement
from driftgate.flows.approval_input import INFO_PREFIX, VERDICT_PREFIX, ApprovalInput, SignedApprovalInput

# Flow runs are read a page at a time, of this many (None: the server's own page,
# PREFECT_SERVER_API_DEFAULT_LIMIT, 200 by default; it refuses to give more).
PAGE: int | None = None


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
    expires: str = ""  # ISO 8601 UTC: when the run stops waiting (rejected) and a signed statement stops counting
    commits: tuple[str, ...] = ()  # the commits since the last applied revision, one line each
    commits_heading: str = ""

    def statement(self, *, decision: str, approver: str) -> Statement:
        """What ``approver`` signs to decide this pause (ValueError if the name cannot be a principal)."""
        return Statement(
            environment=self.environment, flow_run=self.id, plan=self.plan_hash, commit=self.commit,
            decision=decision, approver=approver, expires=datetime.fromisoformat(self.expires),
        )  # fmt: skip


def paused_runs(client: Any = None, *, tagged: str | None = None) -> list[PausedRun]:
    """Every paused reconcile run, oldest first. ``client``: a sync Prefect client to
    reuse (a caller that polls, such as a watching thread); else one for this call.
    ``tagged``: only the runs the Prefect server finds with this environment's tag
    (`driftgate.schedule.run_tags`), a narrowing only: tags can be edited, and a run
    whose tagging failed has none."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    from driftgate.schedule import env_tag

    if client is None:
        with get_client(sync_client=True) as client:
            return paused_runs(client, tagged=tagged)
    tags = FlowRunFilterTags(all_=[env_tag(tagged)]) if tagged is not None else None
    # Prefect answers a page at a time: a change to a base every tenant shares
    # pauses hundreds. Each next page leaves out the runs already read, until one
    # comes back empty: by offset, a run answered meanwhile moved the rest up and hid one.
    runs: dict[uuid.UUID, Any] = {}
    while True:
        page = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["reconcile"])),
            flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(not_any_=list(runs)) if runs else None,
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED])),
                tags=tags,
            ),
            sort=FlowRunSort.ID_DESC,
            limit=PAGE,
        )
        fresh = {run.id: run for run in page if run.id not in runs}
        if not fresh:  # the end (or a server that ignores the filter: no endless loop)
            break
        runs.update(fresh)
    oldest_first = sorted(runs.values(), key=lambda run: (run.start_time or run.created, str(run.id)))
    return [_paused_run(client, run) for run in oldest_first]


def _run_input(client: Any, run_id: uuid.UUID, key: str) -> Any:
    """A flow run input's value, None when there is none: `prefect.input.read_flow_run_input`
    on a client we already hold (each new client costs a TLS context, ~40 ms of CPU)."""
    from prefect.exceptions import PrefectHTTPStatusError

    try:
        return json.loads(client.read_flow_run_input(flow_run_id=run_id, key=key))
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code == 404:
            return None
        raise


def _paused_run(client: Any, run: Any) -> PausedRun:
    pause_key = str(run.state.state_details.pause_key or "") if run.state else ""
    info = _run_input(client, run.id, INFO_PREFIX + pause_key) if pause_key else None
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
    # The environment's tagged runs first: with hundreds paused (a change to a base
    # every tenant shares), reading each one's pause costs a request per run. Every
    # paused run when none tagged matches: an untagged run, or an id prefix.
    matches = [r for r in paused_runs(tagged=ref) if r.environment == ref]
    if not matches:
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
            raise NotPaused(f"run {run_id} ({run.parameters.get('environment', run.name)}) is {state}: it is not waiting for approval")
        return _paused_run(client, run)


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
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            verdict = _run_input(client, uuid.UUID(run.id), f"{VERDICT_PREFIX}{run.pause_key}")
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


def final_state(run_id: str, timeout: float | None, *, poll_seconds: float = 2.0) -> Any:
    """The flow run's final Prefect state, or None when ``timeout`` seconds passed
    first (`driftgate wait`). Raises `UnknownRun` when the server has no such run."""
    from prefect.exceptions import ObjectNotFound

    deadline = None if timeout is None else time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            try:
                state = client.read_flow_run(uuid.UUID(run_id)).state
            except ObjectNotFound:
                raise UnknownRun(f"no flow run {run_id}") from None
            if state is not None and state.is_final():
                return state
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(poll_seconds if deadline is None else max(0.0, min(poll_seconds, deadline - time.monotonic())))
