"""Approvals proven by SSH signatures: the statement an approver signs, and
signing and verifying it with the system's OpenSSH (`ssh-keygen -Y`).

An approval names a person, and Prefect cannot prove who answered a form. In
an environment with ``approval.require_signature`` the answer carries an SSH
signature over a `Statement` that binds the environment, the flow run, the
plan hash, the commit, the decision, the approver and an expiry (UTC). The
signature is checked with ``ssh-keygen -Y verify -n driftgate-approval -I
APPROVER`` against an OpenSSH ``allowed_signers`` file (the format Git uses
for SSH-signed commits), so a name is only accepted with a key listed for it.
No cryptography is written here: ssh-keygen signs and verifies, which also
makes ssh-agent and FIDO (``sk-``) keys work as they do for Git.

Who calls what: the gate (flows/approval.py) builds the expected statement
and calls `check_answer`; ``driftgate approve --key`` calls `sign`;
``driftgate audit verify`` calls `verify_approvals` on the record. Every
refusal is a `SignatureRefused` whose message is one line saying why.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from driftgate.models import SignatureEvidence

NAMESPACE = "driftgate-approval"
HEADER = "driftgate approval v1"
# Signing may wait for a passphrase or a touch of a FIDO key; verifying never waits for a person.
SIGN_TIMEOUT = 120
VERIFY_TIMEOUT = 15
MAX_ANSWER = 16_384  # an armored signature is well under 2 KiB
DECISIONS = ("approve", "reject")

_ARMOR = re.compile(r"-----BEGIN SSH SIGNATURE-----(.*?)-----END SSH SIGNATURE-----", re.S)
PRINCIPAL = re.compile(r"^[^\s,\"'*?!\x00-\x1f\x7f-][^\s,\"'*?!\x00-\x1f\x7f]*$")
_FINGERPRINT = re.compile(r"(SHA256:[A-Za-z0-9+/]+)")
_KEY_TYPE = re.compile(r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp\d+|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)$")


class SignatureRefused(PermissionError):
    """A signature that does not prove this approval; ``str()`` is one line saying why."""

    def __init__(self, why: str, kind: str) -> None:
        super().__init__(why)
        self.kind = kind  # malformed | run | plan | commit | decision | approver | expired | key | statement


class SigningUnavailable(RuntimeError):
    """ssh-keygen is missing, failed or took too long (not a verdict on the signature)."""


# ---------------------------------------------------------------- the statement


@dataclass(frozen=True)
class Statement:
    """What an approver signs. `text()` is the exact bytes signed: one
    ``key: value`` line per field under a version header, in this order."""

    environment: str
    flow_run: str
    plan: str
    commit: str
    decision: str
    approver: str
    expires: datetime

    _LABELS = {"flow_run": "flow run"}

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str) and (not value or any(ord(c) < 32 or ord(c) == 127 for c in value)):
                raise ValueError(f"statement {f.name} {value!r} is empty or holds control characters")
        if self.decision not in DECISIONS:
            raise ValueError(f"statement decision must be approve or reject, not {self.decision!r}")
        if not PRINCIPAL.match(self.approver):
            raise ValueError(
                f"approver {self.approver!r} cannot be an allowed_signers principal "
                "(no spaces, commas, quotes or wildcards, and not starting with -)"
            )
        expires = self.expires if self.expires.tzinfo else self.expires.replace(tzinfo=timezone.utc)
        object.__setattr__(self, "expires", expires.astimezone(timezone.utc).replace(microsecond=0))

    def text(self) -> str:
        lines = [HEADER]
        for f in fields(self):
            value = getattr(self, f.name)
            shown = value.strftime("%Y-%m-%dT%H:%M:%SZ") if isinstance(value, datetime) else value
            lines.append(f"{self._LABELS.get(f.name, f.name)}: {shown}")
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> "Statement":
        """The statement ``text`` spells exactly (what `text()` writes); SignatureRefused otherwise."""
        lines = text.replace("\r\n", "\n").strip("\n").split("\n")
        labels = [cls._LABELS.get(f.name, f.name) for f in fields(cls)]
        if lines[:1] != [HEADER] or len(lines) != len(labels) + 1:
            raise SignatureRefused(f"malformed: the signed text is not a {HEADER!r} statement", "malformed")
        values: dict[str, Any] = {}
        for f, label, line in zip(fields(cls), labels, lines[1:], strict=True):
            prefix = f"{label}: "
            if not line.startswith(prefix):
                raise SignatureRefused(f"malformed: line {line!r} of the signed statement should start with {prefix!r}", "malformed")
            values[f.name] = line[len(prefix) :]
        try:
            values["expires"] = datetime.strptime(values["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
            return cls(**values)
        except ValueError as exc:
            raise SignatureRefused(f"malformed: the signed statement is invalid: {exc}", "malformed") from None

    def mismatch(self, expected: "Statement") -> SignatureRefused | None:
        """Why this (signed) statement is not ``expected``, its expiry aside; None if it is."""
        if (self.environment, self.flow_run) != (expected.environment, expected.flow_run):
            return SignatureRefused(
                f"the signature is for another run ({self.environment} flow run {self.flow_run}), "
                f"not flow run {expected.flow_run} of {expected.environment}", "run")
        if self.plan != expected.plan:
            return SignatureRefused(f"the signature is for another plan ({self.plan[:12]}), not plan {expected.plan[:12]}", "plan")
        if self.commit != expected.commit:
            return SignatureRefused(f"the signature is for another commit ({self.commit[:12]}), not {expected.commit[:12]}", "commit")
        if self.decision != expected.decision:
            return SignatureRefused(f"the signature is for another decision ({self.decision}), not {expected.decision}", "decision")
        if self.approver != expected.approver:
            return SignatureRefused(f"the signature is for approver {self.approver}, but the answer names {expected.approver}", "approver")
        return None  # fmt: skip


def sign_command(template: Statement, *, key: str = "~/.ssh/id_ed25519") -> str:
    """One shell line that prints the SSH signature of ``template``'s statement,
    with its decision and approver as the last two words of the printf, to be
    edited to the approver's own. Shown in the approval form."""
    fmt = template.text()
    marker_d, marker_a = f"decision: {template.decision}\n", f"approver: {template.approver}\n"
    head, _, tail = fmt.partition(marker_d + marker_a)
    printf_format = "".join(
        _printf_escape(part) for part in (head, "decision: ", None, "\napprover: ", None, "\n", tail)
    )
    return (
        f"printf {shlex.quote(printf_format)} {shlex.quote(template.decision)} {shlex.quote(template.approver)}"
        f" | ssh-keygen -Y sign -n {NAMESPACE} -f {key}"
    )


def _printf_escape(part: str | None) -> str:
    if part is None:
        return "%s"
    return part.replace("\\", "\\\\").replace("%", "%%").replace("\n", "\\n")


# ---------------------------------------------------------------- sign and verify


def sign(statement: str, key_path: str | Path) -> str:
    """The armored SSH signature of ``statement`` by the key at ``key_path``
    (a private key, or the public key of one held by ssh-agent or a FIDO token).
    ssh-keygen asks for a passphrase or a touch on the terminal if it needs one."""
    key = Path(key_path).expanduser()
    if not key.is_file():
        raise SigningUnavailable(f"no key file {key}: pass --key with an SSH private key (or the .pub of an agent's key)")
    with tempfile.TemporaryDirectory(prefix="driftgate-sign-") as tmp:
        message = Path(tmp) / "statement"
        message.write_text(statement)
        _ssh_keygen(["-Y", "sign", "-n", NAMESPACE, "-f", str(key), str(message)], timeout=SIGN_TIMEOUT,
                    what=f"signing with {key}", check=True)  # fmt: skip
        return (Path(tmp) / "statement.sig").read_text()


def verify(statement: str, signature: str, allowed_signers: str, principal: str, *, at: datetime | None = None) -> str:
    """The fingerprint of the key that signed ``statement`` as ``principal``
    (listed for it in ``allowed_signers``), or SignatureRefused saying which
    of malformed, a key not listed for that principal, or another statement.
    ``at`` checks key validity (valid-after/valid-before) at that time, for
    re-verifying old approvals."""
    armor = normalize_armor(signature)
    if not PRINCIPAL.match(principal):
        raise SignatureRefused(f"{principal!r} cannot be an allowed_signers principal", "key")
    with tempfile.TemporaryDirectory(prefix="driftgate-verify-") as tmp:
        sig, signers = Path(tmp) / "sig", Path(tmp) / "allowed_signers"
        sig.write_text(armor)
        signers.write_text(allowed_signers)
        args = ["-Y", "verify", "-n", NAMESPACE, "-f", str(signers), "-I", principal, "-s", str(sig)]
        if at is not None:
            args.append(f"-Overify-time={at.astimezone(timezone.utc):%Y%m%d%H%M%S}Z")
        good = _ssh_keygen(args, stdin=statement, what="verifying a signature")
        if good.returncode == 0:
            return _fingerprint(good.stdout)
        # Why not: is the signature over this statement at all, and by whose key?
        check = _ssh_keygen(["-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sig)], stdin=statement,
                            what="checking a signature")  # fmt: skip
        if check.returncode == 0:
            raise SignatureRefused(
                f"signed by key {_fingerprint(check.stdout)}, which allowed_signers does not list for {principal}"
                " (or not for namespace driftgate-approval, or not at this time)", "key")  # fmt: skip
        if "parse" in check.stderr.lower() or "armor" in check.stderr.lower():
            raise SignatureRefused("malformed: the signature cannot be read as an SSH signature", "malformed")
        found = _ssh_keygen(["-Y", "find-principals", "-f", str(signers), "-s", str(sig)], what="finding a signer")
        if principal not in found.stdout.split():
            raise SignatureRefused(f"the signature is by a key that allowed_signers does not list for {principal}", "key")
        raise SignatureRefused(
            "the signature is for another statement (another run, plan, commit, decision or expiry): "
            "sign the statement shown for this run", "statement")  # fmt: skip


def check_answer(expected: Statement, answer: str, allowed_signers: str, *, now: datetime, source: str) -> SignatureEvidence:
    """Verify an approver's answer for ``expected``; the evidence the record keeps.

    ``answer`` is the armored signature, optionally preceded by the statement
    that was signed (``driftgate approve --key`` sends both, so a refusal can
    say exactly what differs). A preceding statement must match ``expected``
    in everything but its expiry, which must lie ahead. ``source`` names where
    ``allowed_signers`` came from, for the record.
    """
    if len(answer) > MAX_ANSWER:
        raise SignatureRefused(f"malformed: the signature field holds {len(answer)} characters (at most {MAX_ANSWER})", "malformed")
    normalize_armor(answer)  # no signature at all: say so before anything else
    before, _, _ = answer.partition("-----BEGIN SSH SIGNATURE-----")
    # Text before the signature counts only from the statement's header on: a
    # paste may carry ssh-keygen's "Signing data on standard input" too.
    claimed_text = before[before.index(HEADER):] if HEADER in before else ""
    statement = expected
    if claimed_text:
        claimed = Statement.parse(claimed_text)
        mismatch = claimed.mismatch(expected)
        if mismatch:
            raise mismatch
        statement = claimed
    if statement.expires <= now:
        raise SignatureRefused(f"the signed statement expired at {statement.expires:%Y-%m-%d %H:%M:%S} UTC", "expired")
    try:
        fingerprint = verify(statement.text(), answer, allowed_signers, expected.approver)
    except SignatureRefused as refused:
        if refused.kind == "statement" and not claimed_text:
            other = replace(expected, decision="reject" if expected.decision == "approve" else "approve")
            if _signs(other.text(), answer):
                raise SignatureRefused(
                    f"the signature is for another decision ({other.decision}), not {expected.decision}", "decision") from None
        raise
    lines = _lines_for(fingerprint, allowed_signers)
    return SignatureEvidence(
        statement=statement.text(), signature=normalize_armor(answer), fingerprint=fingerprint,
        principal=expected.approver, allowed_signers=lines, allowed_signers_source=source,
    )  # fmt: skip


def _signs(statement: str, signature: str) -> bool:
    """Whether ``signature`` is a good signature over ``statement`` by any key."""
    return bool(signer_fingerprint(statement, signature))


def signer_fingerprint(statement: str, signature: str) -> str:
    """The fingerprint of the key that made ``signature`` over ``statement``,
    whoever it is ("" if it is not a signature of ``statement``)."""
    with tempfile.TemporaryDirectory(prefix="driftgate-verify-") as tmp:
        sig = Path(tmp) / "sig"
        sig.write_text(normalize_armor(signature))
        result = _ssh_keygen(["-Y", "check-novalidate", "-n", NAMESPACE, "-s", str(sig)], stdin=statement, what="checking a signature")
        return _fingerprint(result.stdout) if result.returncode == 0 else ""


def normalize_armor(text: str) -> str:
    """The armored signature in ``text``, re-wrapped the way ssh-keygen writes it.

    A form's text field may drop the line breaks of a pasted signature; the
    base64 body survives, so it is re-wrapped here (no cryptography: layout).
    """
    match = _ARMOR.search(text)
    if not match:
        raise SignatureRefused("malformed: no -----BEGIN SSH SIGNATURE----- block (paste what ssh-keygen -Y sign printed)", "malformed")
    body = "".join(match.group(1).split())
    try:
        blob = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRefused("malformed: the SSH signature block is not valid base64", "malformed") from None
    if not blob.startswith(b"SSHSIG"):
        raise SignatureRefused("malformed: the block is not an SSH signature (no SSHSIG magic)", "malformed")
    wrapped = "\n".join(body[i : i + 70] for i in range(0, len(body), 70))
    return f"-----BEGIN SSH SIGNATURE-----\n{wrapped}\n-----END SSH SIGNATURE-----\n"


# ---------------------------------------------------------------- allowed_signers


def signer_entries(allowed_signers: str) -> list[str]:
    """The key lines of an allowed_signers file (comments and blank lines dropped)."""
    return [line.strip() for line in allowed_signers.splitlines() if line.strip() and not line.strip().startswith("#")]


def check_allowed_signers(allowed_signers: str, *, where: str) -> None:
    """Refuse a file without one readable key line, naming ``where`` it came from."""
    entries = signer_entries(allowed_signers)
    if not entries:
        raise ValueError(f"{where} lists no key: add lines like 'alice ssh-ed25519 AAAA...'")
    for number, line in enumerate(entries, 1):
        if _key_of(line) is None:
            raise ValueError(f"{where}: entry {number} ({line[:40]}...) has no SSH public key (principals [options] keytype base64)")


def _key_of(line: str) -> tuple[str, str] | None:
    """(key type, base64 blob) of an allowed_signers line."""
    try:  # options may quote spaces (namespaces="a b"); most lines quote nothing
        words = shlex.split(line, posix=True) if '"' in line else line.split()
    except ValueError:
        return None
    for i, word in enumerate(words[1:-1], 1):
        if _KEY_TYPE.match(word):
            return word, words[i + 1]
    return None


def key_fingerprint(blob_b64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (what ssh-keygen -l prints)."""
    digest = hashlib.sha256(base64.b64decode(blob_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _lines_for(fingerprint: str, allowed_signers: str) -> str:
    """The allowed_signers lines of the key that signed: enough to verify again
    offline. A certificate authority's line cannot be told by the key's
    fingerprint; then the whole file is kept."""
    lines = []
    for line in signer_entries(allowed_signers):
        key = _key_of(line)
        try:
            if key and key_fingerprint(key[1]) == fingerprint:
                lines.append(line)
        except (binascii.Error, ValueError):
            continue
    return "\n".join(lines) + "\n" if lines else allowed_signers


# ---------------------------------------------------------------- the record


def verify_approvals(entries: Iterable[Any]) -> tuple[int, list[str]]:
    """Re-verify every signed approval in the record, offline: (how many were
    checked, one line per problem). ``entries`` are `audit.Entry` rows; run
    rows whose approval carries a signature are checked: the signature over
    the kept statement with the kept allowed_signers lines (at the time of the
    decision), and the statement against the run (environment, flow run,
    plan, commit, decision, approver). Called by ``driftgate audit verify``."""
    checked, problems = 0, []
    for entry in entries:
        content: Mapping[str, Any] = entry.content
        approval = content.get("approval") or {} if entry.table == "runs" else {}
        evidence = approval.get("signature") if isinstance(approval, Mapping) else None
        if not evidence:
            continue
        checked += 1
        problem = _recorded_problem(content, approval, evidence)
        if problem:
            problems.append(f"{entry.name}: signed approval {problem}")
    return checked, problems


def _recorded_problem(run: Mapping[str, Any], approval: Mapping[str, Any], evidence: Mapping[str, Any]) -> str | None:
    try:
        statement = Statement.parse(str(evidence.get("statement") or ""))
        decided = approval.get("decided_at")
        at = datetime.fromisoformat(decided) if isinstance(decided, str) else decided
        at = at if at is None or at.tzinfo else at.replace(tzinfo=timezone.utc)
        facts = {
            "environment": run.get("environment"), "flow_run": run.get("flow_run_id"), "plan": approval.get("plan_hash"),
            "commit": run.get("commit"), "decision": approval.get("decision"), "approver": approval.get("approver"),
        }  # fmt: skip
        wrong = [name for name, value in facts.items() if getattr(statement, name) != value]
        if wrong:
            return f"does not match its run: the statement's {', '.join(wrong)} differ"
        if at is None or at > statement.expires:
            return f"was decided at {at} after its statement expired ({statement.expires:%Y-%m-%d %H:%M:%S} UTC)"
        fingerprint = verify(statement.text(), str(evidence.get("signature") or ""), str(evidence.get("allowed_signers") or ""),
                             statement.approver, at=at)  # fmt: skip
        if fingerprint != evidence.get("fingerprint"):
            return f"names key {evidence.get('fingerprint')} but was signed by {fingerprint}"
    except SignatureRefused as refused:
        return f"does not verify: {refused}"
    except (SigningUnavailable, ValueError, TypeError) as exc:
        return f"cannot be checked: {exc}"
    return None


# ---------------------------------------------------------------- ssh-keygen


def _ssh_keygen(args: list[str], *, what: str, timeout: float = VERIFY_TIMEOUT, stdin: str | None = None,
                check: bool = False) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run ssh-keygen with a timeout. A passphrase prompt or a FIDO touch goes
    to the terminal (/dev/tty), not to the captured output. ``check`` raises
    SigningUnavailable with ssh-keygen's own last line when it fails."""
    binary = shutil.which("ssh-keygen")
    if binary is None:
        raise SigningUnavailable("ssh-keygen is not installed: install OpenSSH (8.2 or newer) for signed approvals")
    try:
        result = subprocess.run([binary, *args], input=stdin, text=True, timeout=timeout, capture_output=True)
    except subprocess.TimeoutExpired:
        raise SigningUnavailable(f"ssh-keygen took more than {timeout:.0f} s {what}") from None
    if check and result.returncode != 0:
        said = [line for line in result.stderr.splitlines() if line.strip()]
        raise SigningUnavailable(f"ssh-keygen failed {what}: {said[-1] if said else f'exit {result.returncode}'}")
    return result


def _fingerprint(output: str) -> str:
    match = _FINGERPRINT.search(output)
    return match.group(1) if match else ""
