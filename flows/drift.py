"""drift_check: is the live state still what Git says? Read-only.

    fetch -> render -> diff -> record (-> self-heal) (-> notify)

Never applies anything itself. A pinned environment is checked at its pin
(driftgate.revisions), so its self-heal keeps it there. Drift found is recorded as a drift event
(what differs, per host task or object, masked). Then the environment's
``drift.self_heal`` decides: ``report`` stops there; ``sync`` starts a sync
run (whose own gate still applies); ``sync-if-safe`` starts one only when the
correcting plan is not risky. An unreachable target or any other error is
recorded (status unknown, with the reason) and does not fail the serving
process; an unexpected exception is recorded as failed with the stage it
happened in and then fails the flow run (driftgate.pipeline). A check while a sync of the environment runs (or
one that a sync overlapped) is recorded as skipped: a half-applied state is
not drift. Run by the ``drift-<env>`` deployments and by the tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, State

from driftgate import targets
from driftgate.config import Config, Environment, load_config
from driftgate.models import Outcome, Plan, RunPurpose, Trigger
from driftgate.pipeline import Pipeline, Stages
from driftgate.runlog import RunLog
from driftgate.flows.links import name_this_run, this_run_url
from driftgate.flows.requests import RunRequest, pinned_config, requested, this_request
from driftgate.flows.locks import free_dead_runs, sync_in_progress
from driftgate.tasks.notify import notify
from driftgate.tasks.pins import destination
from driftgate.tasks.stages import STAGES, diff_live, fetch_source, load_access, record_run, record_start, render_bundle

# The same stages run in the caller's task run rather than each as a task run of its
# own (`.fn`: the task's function; its logs and artifacts still go to the caller's
# run): the fleet's check (flows/fleet.py). A task run costs the Prefect server
# three state events and their rows; eight per environment made the server, not the
# checks, most of a sweep's CPU.
INLINE_STAGES = Stages(
    access=load_access.fn, fetch=fetch_source.fn, render=render_bundle.fn, diff=diff_live.fn,
    record=record_run.fn, record_start=record_start.fn,
)  # fmt: skip


@dataclass(frozen=True)
class Checked:
    """How one environment's check ended: the name of its state (Completed,
    Drifted, Unknown, Skipped) and the message, which starts with its record id."""

    name: str
    message: str


# retries=0 whatever PREFECT_FLOWS_DEFAULT_RETRIES says: a failed run is not run again
# (apply included); transient failures are retried in driftgate.retry only.
@flow(name="drift-check", flow_run_name="drift {environment}", log_prints=False, retries=0)
def drift_check(environment: str, config: str | None = None, delay_seconds: float = 0) -> State:
    """Check ``environment`` for drift; ``delay_seconds`` spreads scheduled runs (jitter).
    Who asked comes from Prefect's run data (flows/requests.py)."""
    if delay_seconds:
        time.sleep(delay_seconds)
    checked = check_environment(environment, config, this_request())
    return Completed(name=checked.name, message=checked.message)


def check_environment(
    environment: str, config: str | None, request: RunRequest, *, loaded: Config | None = None, name_run: bool = True,
    stage_runs: bool = True,
) -> Checked:
    """One environment's drift check, from its record's start to its notification and
    self-heal: the whole of `drift_check`, and what `drift_fleet` runs per environment
    (with the configuration it ``loaded`` once, its own run keeping its name, and
    without ``stage_runs``: the stages run inside its one task run per environment)."""
    logger = get_run_logger()
    run = RunLog(
        environment, purpose=RunPurpose.DRIFT, trigger=request.trigger.value, requested_by=request.requested_by,
        flow_run_id=str(flow_run.id), flow_run_url=this_run_url(),
    )  # fmt: skip
    pipeline = Pipeline(run, STAGES if stage_runs else INLINE_STAGES)
    start, interrupted = pipeline.start()
    env: Environment | None = None
    with pipeline.recorded():  # a crash at any stage is recorded as failed there, and fails the flow run
        free_dead_runs(interrupted, noticed_by=start)
        env = (loaded or load_config(pinned_config(config, environment=environment))).environment(environment)
        # A sync applying now would show as drift: stay clear of it, before the
        # diff and after it (one may have started, or ended, meanwhile).
        busy = sync_in_progress(environment, since=run.started_at)
        if busy is None:
            access = pipeline.access(env)
            where_to = destination if stage_runs else destination.fn
            going = where_to(env, RunRequest(request.trigger, request.requested_by))  # a pinned environment: its pin
            going.note(run)
            pipeline.aim = going.aim
            _, run.plan = pipeline.plan(env, access)
            if name_run:
                name_this_run("drift", environment, run.plan.revision)
            busy = sync_in_progress(environment, since=run.started_at)
        if busy is not None:
            run.skip(f"skipped: {busy}; a check now could take its changes for drift")
    record, record_id = pipeline.finish()
    summary = f"record #{record_id}: {record.outcome.value}"
    if record.outcome == Outcome.SKIPPED:
        logger.info("drift check of %s %s", environment, record.reason)
        return Checked("Skipped", f"{summary}: {record.reason}")
    if record.outcome == Outcome.FAILED:
        logger.warning("drift check of %s could not finish: %s", environment, record.reason)
        # Completed, not Failed: an unknown status is a finding, not a crash of the check.
        return Checked("Unknown", f"{summary}: status unknown: {record.reason}")
    if record.outcome == Outcome.IN_SYNC:
        return Checked("Completed", summary)
    assert env is not None and run.plan is not None
    notify(env, "drift", f"{environment}: drift found", _drift_text(run.plan))
    healed = self_heal(env, run.plan, config)
    logger.info("%s: %d change(s) drifted; %s", environment, len(run.plan.changes), healed)
    return Checked("Drifted", f"{summary}: {len(run.plan.changes)} change(s); {healed}")


def self_heal(env: Environment, plan: Plan, config: str | None) -> str:
    """Start a correcting sync when the environment's policy says so; say what was done."""
    policy = env.drift.self_heal
    if policy == "report":
        return "reported (self_heal: report)"
    if policy == "sync-if-safe" and plan.risky:
        rules = sorted({rule for c in plan.changes for rule in c.rules})
        return f"not healed: the correcting plan is risky ({', '.join(rules) or 'risky'}); sync by hand"
    flow_run_id = start_sync(env.name, config)
    return f"self-heal sync started ({flow_run_id})"


def start_sync(environment: str, config: str | None) -> str:
    """A sync run of ``environment`` with trigger self-heal: through its deployment when
    one is served (so it is queued behind any running sync), else as a subflow.

    Either way the sync knows it was started by this check from Prefect's own
    data (its parent run), not from a parameter anyone could set.
    """
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        # as_subflow (the default): the new run's parent is a task of this check.
        started = run_deployment(f"reconcile/sync-{environment}", parameters={"environment": environment}, timeout=0)
        return str(started.id)
    except ObjectNotFound:
        from driftgate.flows.reconcile import reconcile

        with requested(RunRequest(Trigger.SELF_HEAL, f"self-heal (drift check {flow_run.id})")):
            state = reconcile(environment=environment, config=config, return_state=True)
        return f"{state.state_details.flow_run_id} (subflow, {state.name})"


def _drift_text(plan: Plan) -> str:
    lines = [f"{len(plan.changes)} change(s) at {plan.revision[:12]}:"]
    lines += [f"- {c.action.value} {targets.label(c)}" for c in plan.changes[:20]]  # as its kind names it
    return "\n".join(lines)
