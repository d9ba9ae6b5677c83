"""reconcile: bring one environment to what Git says, as a DAG of tasks.

    sync allowed? -> fetch -> render -> diff -> gate (pause for approval?) -> sync allowed? -> apply -> record

Every run ends in the record, failed, rejected and no-op runs too: fetch,
render and diff, and the record around the run, are the read-only pipeline
(driftgate.pipeline) that the drift check and `driftgate plan` share. A
suspended environment or a closed sync window (driftgate.sync_guard) skips a
scheduled or self-heal sync and refuses one a person asked for, before fetch
and again right before apply. The flow's final state says how it ended:
Completed (applied or in sync; "Skipped"), Failed (with the stage and reason;
"Refused"), or Cancelled named "Rejected".
Run by `driftgate sync`, by deployments, and by the tests.
"""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed, State

from driftgate import savedplan, sync_guard
from driftgate.config import ApprovalMode, Environment, load_config
from driftgate.errors import ApplyFailed
from driftgate.models import Outcome, Plan, RunPurpose
from driftgate.pipeline import Pipeline
from driftgate.revisions import Destination
from driftgate.runlog import RunLog
from driftgate.schedule import run_tags
from driftgate.flows.approval import gate
from driftgate.flows.links import name_this_run, tag_this_run, this_run_url
from driftgate.flows.locks import free_dead_runs, one_sync_at_a_time
from driftgate.flows.requests import RunRequest, pinned_config, this_request
from driftgate.tasks import apply_changes
from driftgate.tasks.guard import sync_allowed
from driftgate.tasks.notify import notify
from driftgate.tasks.pins import destination, pin_after
from driftgate.tasks.stages import STAGES


# retries=0 whatever PREFECT_FLOWS_DEFAULT_RETRIES says: a failed run is not run again
# (apply included); transient failures are retried in driftgate.retry only.
@flow(name="reconcile", flow_run_name="sync {environment}", log_prints=False, retries=0)
def reconcile(environment: str, config: str | None = None, delay_seconds: float = 0) -> State:
    """Reconcile ``environment`` from ``config`` (driftgate.yaml; default lookup if None).

    Who asked, and any pre-approval (``driftgate sync --yes``), come from
    flows/requests.py, never from parameters: the Prefect UI's Run form can
    set every parameter. ``delay_seconds`` spreads cron-scheduled runs
    (jitter). One sync per environment runs at a time (flows/locks.py); one that
    waits longer than the environment's ``sync.wait`` fails at stage queue.
    """
    request = this_request()
    tag_this_run(run_tags(environment, request.purpose.value))  # the UI's filters find CLI runs as deployment runs
    run = RunLog(
        environment,
        purpose=request.purpose,
        trigger=request.trigger.value,
        requested_by=request.requested_by,
        flow_run_id=str(flow_run.id),
        flow_run_url=this_run_url(),
    )
    pipeline = Pipeline(run, STAGES)  # fetch -> render -> diff, and the record around the run
    start, interrupted = pipeline.start()  # first: a run whose process dies is still in the record
    env: Environment | None = None
    going: Destination | None = None
    with pipeline.recorded():  # every failure ends in the record; a bug is raised again for Prefect to show
        free_dead_runs(interrupted, noticed_by=start)  # ... and its sync slot does not outlive it
        env = load_config(pinned_config(config, environment=environment)).environment(environment)
        if delay_seconds:
            time.sleep(delay_seconds)
        with one_sync_at_a_time(start, wait=env.sync.wait):
            verdict = may_sync(run, env, request)  # suspended, or a sync window closed: skipped or refused
            if verdict is not None:
                # Where to: the ref's head, a revision asked for, the pin, a rollback's or a promotion's commit.
                going = destination(env, request)
                converge(pipeline, env, request, verdict, going)
    return _ended(pipeline, env, request, going)


def converge(pipeline: Pipeline, env: Environment, request: RunRequest, verdict: sync_guard.Verdict, going: Destination) -> None:
    """plan -> gate -> apply, into the pipeline's run log."""
    run = pipeline.run
    access = pipeline.access(env)
    going.note(run)
    pipeline.aim = going.aim

    def allowed(plan: Plan) -> Plan:
        """Held to the saved plan (``sync --plan``: else refused); risky when passing a closed window."""
        if request.saved_plan is not None:
            savedplan.require(request.saved_plan, plan)
        return sync_guard.mark_overridden(plan, verdict)

    def replan() -> Plan:
        """fetch, render and diff again right before apply: an approval is for one exact plan."""
        nonlocal bundle
        bundle, fresh = pipeline.plan(env, access)
        name_this_run(request.purpose.value, env.name, fresh.revision)  # a new commit while it waited
        return allowed(fresh)

    bundle, run.plan = pipeline.plan(env, access)
    name_this_run(request.purpose.value, env.name, run.plan.revision)
    run.plan = allowed(run.plan)
    # A rollback is always gated: it undoes what someone approved or pushed.
    gated = always_gated(env) if request.purpose == RunPurpose.ROLLBACK else env
    run.plan, run.approval = gate(gated, run.plan, replan=replan, request=request)
    # Asked again: the environment may have been suspended, or a window closed, while it waited.
    if run.approval is not None and run.approval.approved and may_sync(run, env, request) is not None:
        try:
            run.result = apply_changes(env, bundle, access, run.plan)
        except ApplyFailed as exc:  # the task is Failed; the record keeps every result
            run.result = exc.result


def may_sync(run: RunLog, env: Environment, request: RunRequest) -> sync_guard.Verdict | None:
    """The guard's verdict (driftgate.sync_guard) when the sync may go on; None when it
    is skipped (a schedule or self-heal: nobody waits for it). A sync a person asked
    for that may not run is refused: `SyncRefused` ends it, recorded as refused."""
    verdict = sync_allowed(env, trigger=request.trigger.value, override_window=request.override_window)
    if verdict.allowed:
        return verdict
    if verdict.skip:
        run.skip(verdict.reason)
        return None
    raise sync_guard.refusal(verdict)


def _ended(pipeline: Pipeline, env: Environment | None, request: RunRequest, going: Destination | None) -> State:
    """Record the run (and the pin it leaves); its flow run's final state says how it ended."""
    logger = get_run_logger()
    environment = pipeline.run.environment
    record, record_id = pipeline.finish()
    if going is not None and going.pins:
        pin = pin_after(going, record, by=request.requested_by)  # held there until `driftgate unpin`
        if pin is not None:
            logger.info("%s is pinned to %s (%s)", environment, pin.commit[:12], pin.reason or "no reason given")
    summary = f"record #{record_id}: {record.outcome.value}"
    logger.info("%s at %s", summary, record.commit[:12] or "no commit")
    if record.outcome == Outcome.SKIPPED:
        return Completed(name="Skipped", message=f"{summary}: {record.reason}")
    if record.outcome == Outcome.REFUSED:
        logger.error("%s", record.reason)
        return Failed(name="Refused", message=f"{summary}: {record.reason}")
    if record.outcome == Outcome.REJECTED:
        timed_out = " (timed out)" if record.approval and record.approval.timed_out else ""
        return Cancelled(name="Rejected", message=f"{summary}{timed_out}: {record.approval and record.approval.reason}")
    if record.outcome == Outcome.FAILED:
        logger.error("failed at %s: %s", record.failed_stage and record.failed_stage.value, record.reason)
        if env is not None:
            notify(env, "failed", f"{environment}: sync failed at {record.failed_stage and record.failed_stage.value}", record.reason)
        return Failed(message=f"{summary}: {record.failed_stage and record.failed_stage.value}: {record.reason}")
    return Completed(message=f"{summary}: {record.reason}" if record.reason else summary)  # e.g. unplanned changes


def always_gated(env: Environment) -> Environment:
    """``env`` under approval mode always: every plan with changes waits for a person."""
    return env.model_copy(update={"approval": env.approval.model_copy(update={"mode": ApprovalMode.ALWAYS})})
