"""Signed approvals in the engine (driftgate/signing.py) with real ssh-keygen
keys: the statement, the one-line command the form shows, sign and verify,
and each refusal (forged approver, another run, plan, decision, expired,
malformed), plus re-verifying recorded approvals offline."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from driftgate import signing
from driftgate.signing import SignatureRefused, Statement
from tests.conftest import SSHKey

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
EXPECTED = Statement(
    environment="web-prod", flow_run="0b5e0c9e-1111-4222-8333-944455556666", plan="ab" * 32, commit="cd" * 20,
    decision="approve", approver="alice", expires=NOW + timedelta(hours=1),
)  # fmt: skip


@pytest.fixture(scope="module")
def signers(ssh_keys: dict[str, SSHKey]) -> str:
    """alice and bob may sign approvals; mallory is not listed."""
    return (
        "# approvers of web-prod\n"
        + ssh_keys["alice"].signer_line("alice", 'namespaces="driftgate-approval"')
        + ssh_keys["bob"].signer_line("bob")
    )


def fingerprint(key: SSHKey) -> str:
    return subprocess.run(["ssh-keygen", "-lf", f"{key.path}.pub"], capture_output=True, text=True, check=True).stdout.split()[1]


def check(answer: str, signers: str, expected: Statement = EXPECTED) -> Any:
    return signing.check_answer(expected, answer, signers, now=NOW, source="test")


def test_statement_is_plain_stable_text_that_parses_back() -> None:
    assert EXPECTED.text() == (
        "driftgate approval v1\n"
        "environment: web-prod\n"
        "flow run: 0b5e0c9e-1111-4222-8333-944455556666\n"
        f"plan: {'ab' * 32}\n"
        f"commit: {'cd' * 20}\n"
        "decision: approve\n"
        "approver: alice\n"
        "expires: 2026-12-01T13:00:00Z\n"
    )
    assert Statement.parse(EXPECTED.text()) == EXPECTED
    for bad in ("alice bob", "a,b", "-alice", "ali*", ""):
        with pytest.raises(ValueError):
            replace(EXPECTED, approver=bad)
    with pytest.raises(ValueError, match="control characters"):
        replace(EXPECTED, environment="web\napprover: mallory")


def test_sign_and_verify_return_the_key_fingerprint(ssh_keys: dict[str, SSHKey], signers: str) -> None:
    signature = signing.sign(EXPECTED.text(), ssh_keys["alice"].path)
    assert signature.startswith("-----BEGIN SSH SIGNATURE-----\n")
    assert signing.verify(EXPECTED.text(), signature, signers, "alice") == fingerprint(ssh_keys["alice"])
    evidence = check(signature, signers)
    assert evidence.fingerprint == fingerprint(ssh_keys["alice"]) and evidence.principal == "alice"
    assert evidence.statement == EXPECTED.text() and evidence.signature == signature
    # Only alice's own line is kept for re-verifying offline.
    assert evidence.allowed_signers == ssh_keys["alice"].signer_line("alice", 'namespaces="driftgate-approval"')
    # A text field that dropped the line breaks of the pasted signature still verifies,
    # and so does a paste that caught ssh-keygen's own message before it.
    assert check(signature.replace("\n", " "), signers).fingerprint == evidence.fingerprint
    assert check("Signing data on standard input\n" + signature, signers).fingerprint == evidence.fingerprint


def test_form_command_signs_the_statement_for_the_name_and_decision_typed(ssh_keys: dict[str, SSHKey], signers: str) -> None:
    odd = replace(EXPECTED, environment="it's 100%\\ready")  # quotes, % and \ survive the shell and printf
    command = signing.sign_command(odd, key=str(ssh_keys["bob"].path))
    assert command.endswith(f"approve alice | ssh-keygen -Y sign -n driftgate-approval -f {ssh_keys['bob'].path}")
    as_bob = command.replace(" approve alice |", " reject bob |")
    signature = subprocess.run(["bash", "-c", as_bob], capture_output=True, text=True, check=True, timeout=30).stdout
    for_bob = replace(odd, decision="reject", approver="bob")
    assert check(signature, signers, for_bob).fingerprint == fingerprint(ssh_keys["bob"])


def test_forged_approver_name_is_refused(ssh_keys: dict[str, SSHKey], signers: str) -> None:
    """mallory signs alice's statement with her own key: the name is alice's, the key is not."""
    forged = signing.sign(EXPECTED.text(), ssh_keys["mallory"].path)
    with pytest.raises(SignatureRefused) as refused:
        check(forged, signers)
    assert refused.value.kind == "key" and "\n" not in str(refused.value)
    assert f"signed by key {fingerprint(ssh_keys['mallory'])}, which allowed_signers does not list for alice" in str(refused.value)
    # bob's genuine key does not make him alice either.
    with pytest.raises(SignatureRefused, match="does not list for alice"):
        check(signing.sign(EXPECTED.text(), ssh_keys["bob"].path), signers)


@pytest.mark.parametrize(
    ("field", "value", "kind", "says"),
    [
        ("flow_run", "99999999-1111-4222-8333-944455556666", "run", "the signature is for another run"),
        ("environment", "web-staging", "run", "the signature is for another run"),
        ("plan", "ef" * 32, "plan", f"the signature is for another plan ({'ef' * 6}), not plan {'ab' * 6}"),
        ("decision", "reject", "decision", "the signature is for another decision (reject), not approve"),
        ("commit", "00" * 20, "commit", "the signature is for another commit"),
        ("expires", NOW - timedelta(seconds=1), "expired", "the signed statement expired at 2026-12-01 11:59:59 UTC"),
    ],
)
def test_replayed_signature_is_refused_saying_which(
    ssh_keys: dict[str, SSHKey], signers: str, field: str, value: Any, kind: str, says: str
) -> None:
    other = replace(EXPECTED, **{field: value})
    signature = signing.sign(other.text(), ssh_keys["alice"].path)
    # As `driftgate approve --key` sends it: the signed statement, then its signature.
    with pytest.raises(SignatureRefused) as refused:
        check(other.text() + signature, signers)
    assert refused.value.kind == kind and says in str(refused.value) and "\n" not in str(refused.value)
    # As pasted from the form's command: the signature alone still does not pass.
    with pytest.raises(SignatureRefused) as bare:
        check(signature, signers)
    assert bare.value.kind == ("decision" if field == "decision" else "statement")


def test_expired_statement_is_refused_even_with_a_valid_signature(ssh_keys: dict[str, SSHKey], signers: str) -> None:
    signature = signing.sign(EXPECTED.text(), ssh_keys["alice"].path)
    with pytest.raises(SignatureRefused, match="expired at 2026-12-01 13:00:00 UTC"):
        signing.check_answer(EXPECTED, signature, signers, now=EXPECTED.expires, source="test")


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ("", "no -----BEGIN SSH SIGNATURE----- block"),
        ("looks good to me", "no -----BEGIN SSH SIGNATURE----- block"),
        ("-----BEGIN SSH SIGNATURE-----\n!!!\n-----END SSH SIGNATURE-----", "not valid base64"),
        ("-----BEGIN SSH SIGNATURE-----\naGVsbG8=\n-----END SSH SIGNATURE-----", "no SSHSIG magic"),
        ("-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----", "cannot be read as an SSH signature"),
        ("driftgate approval v1\napprover: alice\n-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----",
         "not a 'driftgate approval v1' statement"),
        (EXPECTED.text().replace("approver: alice", "approver alice") + "-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----",
         "line 'approver alice' of the signed statement should start with 'approver: '"),
        ("x" * 20_000, "at most 16384"),
    ],
)
def test_malformed_signature_is_refused(signers: str, answer: str, says: str) -> None:
    with pytest.raises(SignatureRefused) as refused:
        check(answer, signers)
    assert refused.value.kind == "malformed" and says in str(refused.value) and "\n" not in str(refused.value)


def test_allowed_signers_must_list_keys() -> None:
    with pytest.raises(ValueError, match="lists no key"):
        signing.check_allowed_signers("# nobody yet\n\n", where="approval.allowed_signers")
    with pytest.raises(ValueError, match="entry 1 .* has no SSH public key"):
        signing.check_allowed_signers("alice not-a-key\n", where="approval.allowed_signers")


def test_verify_approvals_rechecks_the_record_offline(ssh_keys: dict[str, SSHKey], signers: str) -> None:
    evidence = check(signing.sign(EXPECTED.text(), ssh_keys["alice"].path), signers)
    approval = {"required": True, "decision": "approve", "approver": "alice", "plan_hash": EXPECTED.plan,
                "decided_at": NOW.replace(tzinfo=None).isoformat(), "signature": evidence.model_dump()}  # fmt: skip
    run = {"environment": "web-prod", "flow_run_id": EXPECTED.flow_run, "commit": EXPECTED.commit, "approval": approval}

    def entry(content: dict[str, Any], table: str = "runs") -> Any:
        return SimpleNamespace(table=table, content=content, name=f"{table} #7 (seq 3)")

    assert signing.verify_approvals([entry(run), entry({"approval": None}), entry({"x": 1}, table="starts")]) == (1, [])
    rejected = EXPECTED.text().replace("decision: approve", "decision: reject")
    altered = {**run, "approval": {**approval, "signature": {**evidence.model_dump(), "statement": rejected}}}
    checked, problems = signing.verify_approvals([entry(altered)])
    assert checked == 1 and problems == ["runs #7 (seq 3): signed approval does not match its run: the statement's decision differ"]
    # The decision rewritten everywhere: the signature gives it away.
    rewritten = {**run, "approval": {**altered["approval"], "decision": "reject"}}
    assert "does not verify: the signature is for another statement" in signing.verify_approvals([entry(rewritten)])[1][0]
    moved = {**run, "commit": "11" * 20}  # a genuine signature copied onto another run
    assert "the statement's commit differ" in signing.verify_approvals([entry(moved)])[1][0]
    swapped_key = {**run, "approval": {**approval, "signature": {**evidence.model_dump(), "allowed_signers": ssh_keys["mallory"].signer_line("alice")}}}
    assert "does not verify: signed by key" in signing.verify_approvals([entry(swapped_key)])[1][0]
    late = {**run, "approval": {**approval, "decided_at": (EXPECTED.expires + timedelta(minutes=1)).isoformat()}}
    assert "after its statement expired" in signing.verify_approvals([entry(late)])[1][0]
