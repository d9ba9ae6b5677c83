"""The stage tasks. Names are what a person reads in the Prefect UI.

Each wraps one engine function; `STAGES` hands the read-only ones (and the
record) to `driftgate.pipeline.Pipeline`, which the reconcile and drift-check
flows run them through.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from driftgate import access as credentials
from driftgate import git, pipeline, policy, report, retry, signing, targets
from driftgate.access import Access
from driftgate.config import Environment
from driftgate.errors import ApplyFailed, PermanentError, TransientError
from driftgate.models import Aim, ApplyResult, Bundle, Checkout, Plan, RunRecord, RunStart, Stage
from driftgate.flows.locks import flow_run_ended
from driftgate.flows.requests import DRIFT_FLOWS
from driftgate.store import Store
from driftgate.tasks import logs

logs.install()  # one ERROR line, no traceback, for an expected failure

# Inputs hold credentials: never hash them into cache keys or persist them.
# No Prefect retries on any task: transient failures are retried once, in
# driftgate.retry (fetch and diff below), never in a second layer on top.
# Said explicitly: Prefect's default (PREFECT_TASKS_DEFAULT_RETRIES) may not be 0.
TASK_SETTINGS: dict[str, Any] = {"cache_policy": NO_CACHE, "persist_result": False, "retries": 0}


def _log_retries(stage: str) -> pipeline.OnRetry:
    """Each retry of ``stage`` within the one retry budget, logged on the run."""

    def log_retry(attempt: int, seconds: float, error: TransientError) -> None:
        get_run_logger().warning(
            "%s: attempt %d of %d failed, trying again in %.0f s: %s", stage, attempt, retry.ATTEMPTS, seconds, error
        )

    return log_retry


@task(name="credentials", **TASK_SETTINGS)
def load_access(env: Environment) -> Access:
    from driftgate.blocks import load_access as from_blocks

    return credentials.load_access(env, from_blocks=from_blocks)


@task(name="fetch", **TASK_SETTINGS)
def fetch_source(env: Environment, access: Access, aim: Aim | None = None) -> Checkout:
    checkout = pipeline.fetch(env, access, aim, on_retry=_log_retries("fetch"))
    signed = f", signed by {checkout.signed_by}" if checkout.signed_by else ""
    where = f"revision {checkout.revision}" if checkout.revision else checkout.ref
    get_run_logger().info("fetched %s: commit %s by %s%s", where, checkout.commit[:12], checkout.author, signed)
    return checkout


@task(name="render", **TASK_SETTINGS)
def render_bundle(env: Environment, checkout: Checkout, access: Access) -> Bundle:
    return pipeline.render(env, checkout, access)


@task(name="diff", **TASK_SETTINGS)
def diff_live(env: Environment, bundle: Bundle, access: Access, off_ref: str = "") -> Plan:
    plan = pipeline.diff(env, bundle, access, off_ref, on_retry=_log_retries("diff"), applied=_last_applied_revision)
    get_run_logger().info("plan %s at %s: %s", plan.plan_hash[:12], plan.revision[:12], report.plan_summary(plan))
    # On the run page before any pause: a reviewer decides from these alone. A drift
    # check publishes under its own key, so it never buries a paused sync's plan.
    prefix = "drift-plan" if flow_run.flow_name in DRIFT_FLOWS else "plan"  # flows/drift.py, flows/fleet.py
    create_markdown_artifact(
        key=f"{prefix}-{_slug(env.name)}", markdown=report.plan_markdown(plan), description=f"driftgate {prefix.replace('-', ' ')}"
    )
    if plan.changes:
        create_table_artifact(
            key=f"{prefix}-table-{_slug(env.name)}",
            table=report.plan_table(plan),
            description=f"driftgate plan {plan.plan_hash[:12]}: {report.plan_summary(plan)}",
        )
    return plan


def _last_applied_revision(environment: str) -> str:
    from driftgate.blocks import record_database_url

    return Store(record_database_url()).last_applied_revision(environment)


@task(name="approval signers", **TASK_SETTINGS)
def load_approval_signers(env: Environment, commit: str) -> tuple[str, str]:
    """Who may sign approvals (allowed_signers text) and where that came from:
    the environment's block, or the file in its repository at ``commit``."""
    if env.approval.allowed_signers_block:
        from driftgate.blocks import load_approval_signers as from_block

        text, source = from_block(env), f"block {env.approval.allowed_signers_block}"
    else:
        path = env.approval.allowed_signers or ""
        text, source = git.file_at_commit(env.source, commit, path, environment=env.name), f"{path} at commit {commit}"
    try:
        signing.check_allowed_signers(text, where=f"environment {env.name!r}: approval allowed_signers ({source})")
    except ValueError as exc:
        raise PermanentError(str(exc), stage=Stage.GATE) from None
    return text, source


@task(name="gate", **TASK_SETTINGS)
def decide_gate(env: Environment, plan: Plan) -> bool:
    """Whether this plan must wait for a person; the pause itself is in the flow."""
    needed = policy.needs_approval(plan, env.approval)
    get_run_logger().info("approval %s (mode %s)", "needed" if needed else "not needed", env.approval.mode.value)
    return needed


# No retries: applying again is not what was approved; a new run re-plans instead.
@task(name="apply", **TASK_SETTINGS)
def apply_changes(env: Environment, bundle: Bundle, access: Access, plan: Plan) -> ApplyResult:
    """The applied result. Raises `ApplyFailed` (holding the whole result, for the
    record) when a host or object failed, so the task ends Failed in the UI."""
    result = targets.apply(env, bundle, access, plan)
    if not result.succeeded:
        raise ApplyFailed(env.name, result)
    get_run_logger().info("applied plan %s: %d changed on %d host(s)/object(s)", plan.plan_hash[:12], result.changed, len(result.hosts))
    return result


# The record tasks are not retried: the store itself waits for a locked database.
@task(name="record start", **TASK_SETTINGS)
def record_start(start: RunStart) -> list[int]:
    """The run's first entry in the record; marks earlier runs of the
    environment that died mid-way as interrupted (returns their record ids)."""
    from driftgate.blocks import record_database_url

    return Store(record_database_url()).start_run(start, ended_elsewhere=partial(flow_run_ended, environment=start.environment))


@task(name="record", **TASK_SETTINGS)
def record_run(run: RunRecord) -> int:
    from driftgate.blocks import record_database_url

    store = Store(record_database_url())
    record_id = store.record(run)
    stored = store.get(str(record_id))
    create_markdown_artifact(
        key=f"record-{_slug(run.environment)}",
        # The link back: the record id to look up, and the row's hash in the chain.
        markdown=report.run_markdown(run, record_id)
        + f"- in the record: `driftgate show {record_id}` (run {run.run_id[:12]}, row hash `{stored.row_hash[:16] if stored else '-'}`)\n",
        description="driftgate record",
    )
    return record_id


# The read-only pipeline's stages as task runs (flows/reconcile.py, flows/drift.py).
STAGES = pipeline.Stages(
    access=load_access,
    fetch=fetch_source,
    render=render_bundle,
    diff=diff_live,
    record=record_run,
    record_start=record_start,
)


def _slug(name: str) -> str:
    """Artifact keys allow lowercase letters, digits and dashes only."""
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower())
