"""Signed approvals through the flow, the Prefect API and the CLI, with real
ssh-keygen keys: every forged or replayed answer is refused with one line and
the run stays paused, then a valid signature applies; the record keeps the
evidence and `driftgate audit verify` re-verifies it. The flows run on the
test-only kind ``files`` (tests/filestarget.py): the gate is the subject, not Ansible."""

from __future__ import annotations

import sqlite3
import subprocess
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from driftgate import signing
from driftgate.config import ConfigError, load_config
from driftgate.models import Outcome
from driftgate.store import Store, StoredRun
from tests.conftest import SSHKey, approver, as_cli, edit_config, invoke_cli
from tests.filestarget import FilesWorld, world_on_files  # noqa: F401  (fixtures: world on the files kind)

# A flow run with several answers and console-script calls, on a machine others share.
pytestmark = pytest.mark.timeout(600)


SIGNED = {"mode": "always", "timeout": "3m", "approvers": ["alice", "bob"], "require_signature": True}


def save_signers(name: str, text: str) -> None:
    from driftgate.blocks import ApprovalSigners

    ApprovalSigners(allowed_signers=text).save(name, overwrite=True)


@pytest.fixture
def signed_world(world: FilesWorld, ssh_keys: dict[str, SSHKey], prefect_api: str) -> FilesWorld:
    """The demo environment, requiring approvals signed by alice or bob (a block); mallory has a key but is not listed."""
    block = f"approvers-{uuid.uuid4().hex[:8]}"
    save_signers(block, ssh_keys["alice"].signer_line("alice", 'namespaces="driftgate-approval"') + ssh_keys["bob"].signer_line("bob"))
    edit_config(world, approval={**SIGNED, "allowed_signers_block": block})
    return world


def sync(world: FilesWorld, *, user: str | None = None, yes: bool = False, key: SSHKey | None = None) -> tuple[Any, StoredRun]:
    """A sync as `driftgate sync [--yes [--key KEY]]` by ``user`` runs it."""
    from driftgate.flows.reconcile import reconcile

    with as_cli(user, yes=yes, key=key.path if key else None):
        state = reconcile(environment="demo", config=str(world.config), return_state=True)
    return state, Store().history("demo", limit=1)[0]


def next_pause(run: Any) -> Any:
    """The same run's next pause, once the flow has asked again."""
    from driftgate.flows.approvals_api import NotPaused, find_paused_run

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            fresh = find_paused_run(run.id)
        except NotPaused:  # running between two pauses
            fresh = None
        if fresh is not None and fresh.pause_key != run.pause_key:
            return fresh
        time.sleep(0.2)
    pytest.fail(f"run {run.id} did not pause again")


def send(run: Any, signature: str, *, decision: str = "approve", name: str = "alice") -> str | None:
    """Answer ``run`` with ``signature``; the flow's refusal (one line), or None if it took the answer."""
    from driftgate.flows.approvals_api import ApproverRefused, answer_run, await_verdict

    answer_run(run, decision=decision, approver=name, reason="signed", signature=signature)
    try:
        await_verdict(run)
    except ApproverRefused as refused:
        return str(refused)
    return None


def signed(statement: signing.Statement, key: SSHKey) -> str:
    """What `driftgate approve --key` sends: the statement, then its signature."""
    return statement.text() + signing.sign(statement.text(), key.path)


def test_forged_and_replayed_signatures_are_refused_then_a_valid_one_applies(signed_world: FilesWorld, ssh_keys: dict[str, SSHKey]) -> None:
    from prefect.flow_runs import resume_flow_run

    from driftgate.flows.approvals_api import ApproverRefused, answer_run

    alice, mallory = ssh_keys["alice"], ssh_keys["mallory"]
    refusals: dict[str, str | None] = {}

    def act(run: Any) -> None:
        assert run.require_signature and run.flow_run == run.id and run.expires
        mine = run.statement(decision="approve", approver="alice")
        attacks = {
            "forged name": signed(mine, mallory),  # mallory's key, alice's name
            "another run": signed(replace(mine, flow_run=str(uuid.uuid4())), alice),
            "another plan": signed(replace(mine, plan="0" * 64), alice),
            "another decision": signing.sign(replace(mine, decision="reject").text(), alice.path),  # pasted bare
            "expired": signed(replace(mine, expires=mine.expires - timedelta(hours=1)), alice),
            "malformed": "-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n",
        }
        for name, signature in attacks.items():
            refusals[name] = send(run, signature)
            run = next_pause(run)
        # No signature at all: driftgate refuses to send it, and the server refuses it by the form's schema.
        with pytest.raises(ApproverRefused, match="requires a signed answer"):
            answer_run(run, decision="approve", approver="alice", reason="")
        with pytest.raises(RuntimeError, match="Cannot resume this run"):
            resume_flow_run(uuid.UUID(run.id), run_input={"decision": "approve", "approver": "alice"})
        refusals["valid"] = send(run, signing.sign(run.statement(decision="approve", approver="alice").text(), alice.path))

    with approver(act) as seen:
        state, record = sync(signed_world, user="alice", yes=True)  # --yes without a key does not skip a signed gate
    assert refusals.pop("valid") is None
    expected = {
        "forged name": f"signed by key {signing.key_fingerprint(mallory.public.split()[1])}, which allowed_signers does not list for alice",
        "another run": "the signature is for another run",
        "another plan": "the signature is for another plan (000000000000)",
        "another decision": "the signature is for another decision (reject), not approve",
        "expired": "the signed statement expired at",
        "malformed": "malformed: the signature cannot be read as an SSH signature",
    }
    for name, says in expected.items():
        assert refusals[name] and says in refusals[name] and "stays paused" in refusals[name], (name, refusals[name])
        assert "\n" not in refusals[name]
    assert len(seen) == 1  # one run, paused throughout
    assert state.is_completed(), state.message
    assert record.outcome == Outcome.APPLIED and signed_world.config_line.exists()
    evidence = record.approval.signature
    assert record.approval.approver == "alice" and record.approval.decision == "approve"
    assert evidence.principal == "alice" and evidence.fingerprint == signing.key_fingerprint(alice.public.split()[1])
    statement = signing.Statement.parse(evidence.statement)
    assert (statement.flow_run, statement.plan, statement.commit) == (record.flow_run_id, record.plan_hash, record.commit)
    assert evidence.allowed_signers == alice.signer_line("alice", 'namespaces="driftgate-approval"')
    assert evidence.allowed_signers_source.startswith("block approvers-")


def test_cli_approve_with_key_end_to_end_and_audit_verify(signed_world: FilesWorld, ssh_keys: dict[str, SSHKey], prefect_api: str, driftgate_home: Path) -> None:
    env = {"PREFECT_API_URL": prefect_api}
    results: dict[str, Any] = {}

    def act(run: Any) -> None:
        results["unsigned"] = invoke_cli("approve", run.id, "--as", "alice", env=env)
        results["forged"] = invoke_cli("approve", run.id, "--as", "alice", "--key", str(ssh_keys["mallory"].path), env=env)
        run = next_pause(run)
        results["listed"] = invoke_cli("approvals", env=env)
        results["approved"] = invoke_cli("approve", "demo", "--as", "bob", "--key", str(ssh_keys["bob"].path), "--reason", "checked", env=env)

    with approver(act):
        state, record = sync(signed_world)
    assert results["unsigned"].returncode == 1 and "requires a signed answer: pass --key" in results["unsigned"].stderr
    forged = results["forged"]
    assert forged.returncode == 1 and "which allowed_signers does not list for alice" in forged.stderr
    assert "stays paused" in forged.stderr and len(forged.stderr.strip().splitlines()) == 1
    assert "the answer from alice was refused" in results["listed"].stdout and "signed approval" in results["listed"].stdout
    assert results["approved"].returncode == 0, results["approved"].stderr
    assert f"approved run {record.flow_run_id} of demo" in results["approved"].stdout
    assert "signed with SHA256:" in results["approved"].stdout
    assert record.outcome == Outcome.APPLIED and record.approval.approver == "bob"
    assert record.approval.signature.principal == "bob"

    verified = invoke_cli("audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "1 signed approval re-verified" in verified.stdout

    # Someone with write access to the database stretches the signed statement's expiry by a century.
    with sqlite3.connect(driftgate_home / "driftgate.db") as db:
        db.execute("UPDATE runs SET approval = replace(approval, 'expires: 20', 'expires: 21') WHERE id = ?", (record.id,))
    tampered = invoke_cli("audit", "verify")
    assert tampered.returncode == 1
    assert f"runs #{record.id}" in tampered.stderr and "was altered" in tampered.stderr  # the chain
    assert "signed approval does not verify: the signature is for another statement" in tampered.stderr  # and the signature


def test_sync_yes_with_key_is_a_signed_pre_approval(signed_world: FilesWorld, ssh_keys: dict[str, SSHKey]) -> None:
    """`sync --yes --key`: the CLI user's key signs the run's statement in the CLI's process,
    checked like any answer; someone else's key under alice's login only makes the run wait."""
    from typer.testing import CliRunner

    from driftgate.cli import app

    edit_config(signed_world, approval={"timeout": "4s"})
    state, record = sync(signed_world, user="alice", yes=True, key=ssh_keys["mallory"])
    assert record.outcome == Outcome.REJECTED and record.approval.timed_out is True  # waited, nobody answered
    assert not signed_world.config_line.exists()

    runner = CliRunner()
    assert "--key signs a pre-approval: give it with --yes" in runner.invoke(app, ["sync", "demo", "--key", str(ssh_keys["alice"].path)]).output
    result = runner.invoke(
        app, ["sync", "demo", "--config", str(signed_world.config), "--yes", "--key", str(ssh_keys["alice"].path)],
        env={"DRIFTGATE_USER": "alice"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = Store().history("demo", limit=1)[0]
    assert record.outcome == Outcome.APPLIED and record.requested_by == "alice"
    assert record.approval.approver == "alice" and record.approval.reason == "approved in advance (sync --yes --key)"
    evidence = record.approval.signature
    assert evidence.fingerprint == signing.key_fingerprint(ssh_keys["alice"].public.split()[1])
    assert signing.Statement.parse(evidence.statement).flow_run == record.flow_run_id
    assert signing.verify_approvals(Store().chain_entries()) == (1, [])


def test_allowed_signers_in_the_repository_with_ssh_signed_commits(world: FilesWorld, ssh_keys: dict[str, SSHKey], prefect_api: str) -> None:
    """Who may approve is a file in the repository, read at the commit being approved; the commits are SSH-signed."""
    from driftgate.flows.approvals_api import sign_answer

    commit_signers = world.root / "commit_signers"
    commit_signers.write_text(ssh_keys["alice"].signer_line("alice@example.com"))
    (world.repo / ".driftgate").mkdir()
    (world.repo / ".driftgate/allowed_signers").write_text(ssh_keys["bob"].signer_line("bob", 'namespaces="driftgate-approval"'))
    subprocess.run(["git", "add", "-A"], cwd=world.repo, check=True)
    subprocess.run(["git", "-c", "gpg.format=ssh", "-c", f"user.signingkey={ssh_keys['alice'].path}", "commit", "-q", "-S",
                    "-m", "bob approves demo"], cwd=world.repo, check=True)  # fmt: skip
    edit_config(world, source={"require_signed_commits": True, "allowed_signers": [str(commit_signers)]},
                approval={**SIGNED, "allowed_signers": ".driftgate/allowed_signers"})  # fmt: skip

    def act(run: Any) -> None:
        assert send(run, sign_answer(run, decision="approve", approver="alice", key=str(ssh_keys["alice"].path))) is not None
        run = next_pause(run)
        assert send(run, sign_answer(run, decision="approve", approver="bob", key=str(ssh_keys["bob"].path)), name="bob") is None

    with approver(act):
        state, record = sync(world)
    assert record.outcome == Outcome.APPLIED, record.reason
    assert record.signed_by.startswith("alice@example.com (SHA256:")
    assert record.approval.signature.allowed_signers_source == f".driftgate/allowed_signers at commit {record.commit}"


def test_allowed_signers_in_the_repository_require_signed_commits(world: FilesWorld) -> None:
    """Else whoever can push lists their own key under an approver's name, in the commit to be approved."""
    def problem(**approval: Any) -> str:
        data = yaml.safe_load(world.config.read_text())
        data["environments"]["demo"]["approval"] = approval
        world.config.write_text(yaml.safe_dump(data))
        with pytest.raises(ConfigError) as bad:
            load_config(world.config)
        return str(bad.value).splitlines()[-1].strip()

    assert problem(**SIGNED, allowed_signers=".driftgate/allowed_signers").startswith(
        "environment 'demo': approval.allowed_signers is read from the repository, so source.require_signed_commits must be true"
    )
    assert "approval: require_signature needs exactly one of allowed_signers" in problem(**SIGNED)
    assert "approval: require_signature needs exactly one" in problem(**SIGNED, allowed_signers="a", allowed_signers_block="b")
    assert "approval: allowed_signers is given but require_signature is not true" in problem(allowed_signers_block="x")
    assert "approval.allowed_signers: path '../keys' escapes the repository" in problem(**SIGNED, allowed_signers="../keys")
    assert "approval.require_signatures: unknown key" in problem(require_signatures=True)


@pytest.mark.usefixtures("prefect_api")
def test_missing_allowed_signers_fails_the_run_before_it_waits(world: FilesWorld, ssh_keys: dict[str, SSHKey]) -> None:
    commit_signers = world.root / "commit_signers"
    commit_signers.write_text(ssh_keys["alice"].signer_line("alice"))
    subprocess.run(["git", "-c", "gpg.format=ssh", "-c", f"user.signingkey={ssh_keys['alice'].path}", "commit", "-q", "-S",
                    "--allow-empty", "-m", "no allowed_signers yet"], cwd=world.repo, check=True)  # fmt: skip
    edit_config(world, source={"require_signed_commits": True, "allowed_signers": [str(commit_signers)]},
                approval={**SIGNED, "allowed_signers": ".driftgate/allowed_signers"})  # fmt: skip
    state, record = sync(world)
    assert record.outcome == Outcome.FAILED and record.failed_stage.value == "gate"
    assert "approval.allowed_signers '.driftgate/allowed_signers' at commit" in record.reason and "does not exist" in record.reason
    assert not world.config_line.exists()
