"""Who asked for a run, and how: from Prefect's own run data, never from parameters.

A deployment's parameters and the Prefect UI's Run form are open to whoever
reaches the Prefect API (Prefect OSS has no user identity), so nothing they
carry may name the requester, choose the trigger or approve a plan. Instead:

- the CLI runs flows in its own process and hands them a `RunRequest`
  through a context variable (`requested`): trigger ``cli``, the CLI user,
  a pre-approval when ``--yes`` was given, ``--override-window`` and the
  saved plan of ``--plan``. No other process can set it.
- a deployment run (``serve`` or a worker) is described by what the Prefect
  server itself recorded about the run: ``schedule`` when its scheduler
  created it, ``self-heal`` when a drift check started it, a promotion when
  the promote flow started it (flows/promote.py), else ``manual``
  (the UI or the API), with Prefect's actor where the server provides one,
  else plainly "unknown (Prefect UI/API)".

Called by the reconcile and drift-check flows (`this_request`), the CLI
(`requested`, `cli_request`) and the drift check's self-heal.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.runtime import deployment, flow_run

from driftgate.errors import ConfigError
from driftgate.models import RunPurpose, Trigger
from driftgate.runlog import current_user
from driftgate.savedplan import SavedPlan

SCHEDULER = "prefect scheduler"
UNKNOWN_ACTOR = "unknown (Prefect UI/API)"
DRIFT_FLOWS = ("drift-check", "drift-fleet")  # the flows whose runs start self-heal syncs
PROMOTE_FLOW = "promote"


@dataclass(frozen=True)
class PauseNotice:
    """What the gate tells the process that started a run when the run pauses
    for approval (`driftgate sync` prints it): where, who may decide, until when."""

    environment: str
    flow_run: str
    url: str
    summary: str
    deciders: str
    deadline: datetime
    timeout: timedelta
    asked_again: str = ""


@dataclass(frozen=True)
class RunRequest:
    """How a run came to be. ``pre_approve`` is honoured for CLI runs only;
    ``on_pause`` hears of each pause for approval (the CLI's terminal).

    ``purpose``, ``revision`` and ``reason`` say where a sync goes when not to
    its ref's head (`driftgate.revisions`): ``sync --revision``, ``rollback
    [--to]``, ``promote``; ``override_window`` (CLI runs only) passes a closed
    sync window; ``saved_plan`` is the plan the run may apply, and no other.
    Like the rest, they travel in this process only."""

    trigger: Trigger
    requested_by: str
    pre_approve: bool = False
    signing_key: Path | None = None
    on_pause: Callable[[PauseNotice], None] | None = None
    purpose: RunPurpose = RunPurpose.SYNC
    revision: str | None = None
    reason: str = ""
    override_window: bool = False
    saved_plan: SavedPlan | None = None


_request: ContextVar[RunRequest | None] = ContextVar("driftgate_run_request", default=None)


@contextmanager
def requested(request: RunRequest) -> Iterator[None]:
    """Runs started in this context (in this process) were asked for by ``request``."""
    token = _request.set(request)
    try:
        yield
    finally:
        _request.reset(token)


def cli_request(
    *,
    pre_approve: bool = False,
    signing_key: Path | None = None,
    on_pause: Callable[[PauseNotice], None] | None = None,
    purpose: RunPurpose = RunPurpose.SYNC,
    revision: str | None = None,
    reason: str = "",
    override_window: bool = False,
    saved_plan: SavedPlan | None = None,
) -> RunRequest:
    """A run asked for from the command line, by its user (DRIFTGATE_USER or the login)."""
    return RunRequest(
        Trigger.CLI, current_user(), pre_approve=pre_approve, signing_key=signing_key, on_pause=on_pause,
        purpose=purpose, revision=revision, reason=reason,
        override_window=override_window, saved_plan=saved_plan,
    )  # fmt: skip


def in_deployment_run() -> bool:
    """Whether the current flow run is a deployment's run, or a subflow of one.

    A top-level run's own record says so; Prefect's ``runtime.deployment.id``
    would ask the server for the run again on each use outside a deployment."""
    context = FlowRunContext.get()
    run = context.flow_run if context is not None else None
    if run is not None and run.parent_task_run_id is None:
        return run.deployment_id is not None
    return deployment.id is not None  # a subflow runs under its parent's deployment, which Prefect tracks


def this_request() -> RunRequest:
    """Who asked for the current flow run (call inside a flow)."""
    if not in_deployment_run():
        # Run in this process: by the CLI, a self-heal subflow, or Python code calling the flow.
        return _request.get() or RunRequest(Trigger.MANUAL, current_user())
    # A deployment run: a context variable of this process says nothing about
    # who asked; the Prefect server's record of the run does.
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run.id))
        if run.auto_scheduled:  # only the server's scheduler sets it; the API cannot
            return RunRequest(Trigger.SCHEDULE, SCHEDULER)
        if run.parent_task_run_id is not None:
            parent = client.read_flow_run(client.read_task_run(run.parent_task_run_id).flow_run_id)
            parent_flow = client.read_flow(parent.flow_id).name
            if parent_flow in DRIFT_FLOWS:
                return RunRequest(Trigger.SELF_HEAL, f"self-heal (drift check {parent.id})")
            if parent_flow == PROMOTE_FLOW:  # the promote-ENV deployment (flows/promote.py): a promotion
                return RunRequest(Trigger.MANUAL, f"{UNKNOWN_ACTOR}, promotion run {parent.id}", purpose=RunPurpose.PROMOTE)
        if run.created_by is not None:  # an automation; its name is Prefect's, not a verified person
            who = run.created_by.display_value or str(run.created_by.id)
            return RunRequest(Trigger.MANUAL, f"{who} ({str(run.created_by.type).lower()}, via Prefect)")
    return RunRequest(Trigger.MANUAL, UNKNOWN_ACTOR)


def pinned_config(config: str | None, *, environment: str) -> str | None:
    """The driftgate.yaml a run must use.

    A deployment run uses the file its service was started with
    (``DRIFTGATE_CONFIG``, which ``driftgate serve`` sets): a ``config``
    parameter from the Run form naming another file would let anyone swap
    the approval policy, so it is refused.
    """
    pinned = os.environ.get("DRIFTGATE_CONFIG")
    if not pinned or not in_deployment_run():
        return config
    if config is not None and Path(config).resolve() != Path(pinned).resolve():
        raise ConfigError(
            f"environment {environment!r}: this run's `config` parameter names {config}, but deployment runs use "
            f"the configuration their service was started with ({pinned}); nothing was run: start the run without "
            "a `config` parameter, or restart the service with the other file"
        )
    return pinned
