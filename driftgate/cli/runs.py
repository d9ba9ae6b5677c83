"""Commands that run flows or answer them through Prefect: ``sync``,
``approvals``, ``approve`` and ``reject``.

They import Prefect lazily and use the server named by ``PREFECT_API_URL``
when set, otherwise a temporary one (slow: 10-20 s).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.markup import escape

from driftgate.cli.common import EXIT_ERROR, EXIT_OK, ConfigOption, OutputOption, check_output, console, fail, validated_config_path
from driftgate.cli.prefect_env import api_description, flow_run_url, prefect_defaults, prefect_server
from driftgate.cli.records import record_of

if TYPE_CHECKING:
    from driftgate.models import RunPurpose
    from driftgate.savedplan import SavedPlan

VerboseOption = typer.Option(
    False, "--verbose", "-v", help="also print the run's logs here, with the traceback of an unexpected error"
)


def sync(
    environment: str = typer.Argument(..., help="environment name from driftgate.yaml"),
    config: Path | None = ConfigOption,
    yes: bool = typer.Option(
        False, "--yes", "-y",
        help="approve, as you, a plan that would pause (the environment's approver rules still apply; recorded)",
    ),
    key: Path | None = typer.Option(
        None, "--key", "-k",
        help="with --yes: sign the pre-approval with this SSH key, where approval.require_signature is on",
    ),
    verbose: bool = VerboseOption,
    revision: str | None = typer.Option(
        None, "--revision", "-r",
        help="apply this branch, tag or commit instead of the ref (risky when not its head), and pin ENV to it",
    ),
    reason: str = typer.Option("", "--reason", help="with --revision: why; kept with the pin (driftgate status)"),
    plan_file: Path | None = typer.Option(
        None, "--plan", help="apply only this saved plan (driftgate plan ENV --out FILE): refused if the live plan differs"
    ),
    override_window: bool = typer.Option(
        False, "--override-window", help="sync inside a closed sync window; the plan becomes risky (rule sync-window)"
    ),
) -> None:
    """Reconcile ENV now (fetch, render, diff, gate, apply, record). Exit 0 on success, 1 on failure, rejection or refusal.

    A plan that needs approval pauses the run: sync says so (the run's page,
    who may decide, the deadline) and waits for the answer. With --revision,
    ENV stays pinned to that commit (schedules and self-heal keep it there)
    until `driftgate unpin ENV`. A failure is one line: the stage and the
    reason; so is a refusal (a suspended environment, a closed sync window, a
    saved plan that no longer holds). The run's logs (what it
    fetched, planned, applied; tracebacks of unexpected errors) are on its
    page in the Prefect UI, and here with --verbose."""
    if key is not None and not yes:
        fail("--key signs a pre-approval: give it with --yes (to answer a paused run: driftgate approve RUN --key)")
    if key is not None and not key.expanduser().is_file():
        fail(f"--key {key}: no such key file (an SSH private key, or the .pub of a key in ssh-agent)")
    config_path = validated_config_path(config, environment)
    saved = _saved_plan(plan_file, environment)
    if saved is not None and saved.pinned and revision is None:
        revision = saved.plan.revision  # planned with --revision: applied at that very commit
    if reason and revision is None:
        fail("--reason says why ENV is pinned: give it with --revision (or --plan FILE of a plan made with --revision)")
    request = Request(
        pre_approve=yes, signing_key=key.expanduser() if key else None, revision=revision, reason=reason,
        override_window=override_window, saved_plan=saved,
    )  # fmt: skip
    run_reconcile(environment, config_path, request, verbose=verbose)


@dataclass(frozen=True)
class Request:
    """What the CLI asks of a reconcile run, before Prefect is imported (`run_reconcile`)."""

    pre_approve: bool = False
    signing_key: Path | None = None
    purpose: RunPurpose | None = None  # None: a sync (no RunPurpose.SYNC here: the models load when a run starts)
    revision: str | None = None
    reason: str = ""
    override_window: bool = False
    saved_plan: SavedPlan | None = None


def run_reconcile(environment: str, config_path: Path, asked: Request, *, verbose: bool, what: str = "reconcile") -> NoReturn:
    """Run the reconcile flow here as the CLI's user asked, print its record, and
    exit 0 (applied or in sync) or 1. Used by sync, rollback and promote."""
    from driftgate.cli.printing import print_pause, print_run
    from driftgate.models import Outcome, RunPurpose

    prefect_defaults()
    console.print(f"[dim]running the {what} flow for {escape(environment)} on {api_description()}…[/]")
    with prefect_server():  # before Prefect is imported: it reads PREFECT_API_URL once
        from driftgate.flows.reconcile import reconcile
        from driftgate.flows.requests import cli_request, requested
        from driftgate.tasks.logs import run_logs_in_terminal

        # Trigger, requester, pre-approval and where to go travel in this process only,
        # never as flow parameters (which anyone reaching the Prefect API could set).
        request = cli_request(
            pre_approve=asked.pre_approve, signing_key=asked.signing_key, on_pause=print_pause,
            purpose=asked.purpose or RunPurpose.SYNC, revision=asked.revision, reason=asked.reason,
            override_window=asked.override_window, saved_plan=asked.saved_plan,
        )  # fmt: skip
        with requested(request), run_logs_in_terminal(verbose=verbose):
            state = reconcile(environment=environment, config=str(config_path), return_state=True)
    flow_run_id = str(state.state_details.flow_run_id) if state.state_details.flow_run_id else None
    record = record_of(flow_run_id)
    if record is None:
        fail(f"the flow ended {state.type.value} without a record: {state.message}")
    if record.outcome == Outcome.REFUSED:  # policy said no before anything changed: one line
        fail(f"refused: {record.reason} (record #{record.id})")
    print_run(record)
    url = flow_run_url(flow_run_id)
    if url:
        console.print(f"[dim]Prefect UI: {url}[/]")
    raise typer.Exit(EXIT_OK if record.outcome in (Outcome.APPLIED, Outcome.IN_SYNC) else EXIT_ERROR)


def _saved_plan(path: Path | None, environment: str) -> SavedPlan | None:
    """``--plan FILE``, checked before anything starts: for this environment, and unaltered."""
    if path is None:
        return None
    from driftgate import savedplan
    from driftgate.errors import ConfigError

    try:
        return savedplan.load(path, environment=environment)
    except ConfigError as exc:
        fail(str(exc))


def approvals(output: str = OutputOption) -> None:
    """Runs waiting for approval: environment, commit, plan, who asked, since when, and where to see them."""
    from driftgate.cli.printing import print_paused_runs

    check_output(output)
    prefect_defaults()
    from driftgate.flows.approval import paused_runs

    runs = paused_runs()
    if output == "json":
        rows = [{**r.__dict__, "url": flow_run_url(r.id), "waiting_since": r.waiting_since and r.waiting_since.isoformat()} for r in runs]
        print(json.dumps(rows, indent=2))
        return
    print_paused_runs(runs)


_AS_OPTION = typer.Option(None, "--as", "--approver", help="who decides (default: $DRIFTGATE_USER or your login)")
_REASON_OPTION = typer.Option("", "--reason", help="why; kept in the record")
_KEY_OPTION = typer.Option(
    None, "--key", "-k",
    help="sign the answer with this SSH key (a private key, or the .pub of a key in ssh-agent or on a FIDO token); "
    "needed where approval.require_signature is on",
)  # fmt: skip


def approve(
    run: str = typer.Argument(..., help="flow run id (see `driftgate approvals`), or an environment with one paused run"),
    reject: bool = typer.Option(False, "--reject", help="reject instead: nothing is applied"),
    reason: str = _REASON_OPTION,
    approver: str = _AS_OPTION,
    key: str | None = _KEY_OPTION,
) -> None:
    """Approve (or --reject) a paused sync: the same as the form in the Prefect UI."""
    _answer(run, "reject" if reject else "approve", approver, reason, key)


def reject(
    run: str = typer.Argument(..., help="flow run id, or an environment with one paused run"),
    reason: str = _REASON_OPTION,
    approver: str = _AS_OPTION,
    key: str | None = _KEY_OPTION,
) -> None:
    """Reject a paused sync: nothing is applied and the run ends as rejected."""
    _answer(run, "reject", approver, reason, key)


def _answer(ref: str, decision: str, approver: str | None, reason: str, key: str | None) -> None:
    from driftgate.runlog import current_user

    prefect_defaults()
    # Without PREFECT_API_URL Prefect starts a temporary server on the same
    # database (PREFECT_HOME) as the paused run's, and finds it there.
    from driftgate.flows.approval import answer_run, await_verdict, find_paused_run, sign_answer

    name = approver or current_user()
    signed = ""
    try:
        paused = find_paused_run(ref)
        signature = sign_answer(paused, decision=decision, approver=name, key=key) if key and paused.require_signature else ""
        answer_run(paused, decision=decision, approver=name, reason=reason, signature=signature)
        if paused.require_signature:  # only the flow can check a signature: wait for its verdict
            await_verdict(paused)
            signed = f", signed with {_key_fingerprint(signature)}"
    except (LookupError, PermissionError, ValueError) as exc:
        fail(str(exc))
    done = "approved" if decision == "approve" else "rejected"
    console.print(
        f"{done} run {paused.id} of {escape(paused.environment)}"
        + (f" (plan {paused.plan_hash[:12]}: {escape(paused.summary)})" if paused.plan_hash else "")
        + signed
    )
    if key and not paused.require_signature:
        console.print(f"[dim]{escape(paused.environment)} does not require signed approvals: the answer was sent unsigned[/]")
    url = flow_run_url(paused.id)
    if url:
        console.print(f"[dim]Prefect UI: {url}[/]")


def _key_fingerprint(signed_answer: str) -> str:
    """The fingerprint of the key in a signature (check-novalidate prints it; no principal needed)."""
    from driftgate import signing

    statement, _, _ = signed_answer.partition("-----BEGIN SSH SIGNATURE-----")
    try:
        return signing.signer_fingerprint(statement, signed_answer)
    except (signing.SignatureRefused, signing.SigningUnavailable):
        return "an SSH key"
