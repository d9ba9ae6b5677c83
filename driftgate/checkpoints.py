"""Checkpoints: the record's head, signed, kept outside its database.

A hash chain shows that nothing inside it was changed, but not that its
newest rows were cut off, that every hash from some row on was recomputed, or
that the database was deleted and started anew. After every transaction that
appends to the record, `anchor` writes a *checkpoint* somewhere the database's
writers cannot rewrite: a JSON payload (its place in the checkpoint log, the
chain's identity, the last ``seq`` and its ``row_hash``, the time, the
database, the signing key, and the hash of the checkpoint before it), signed
by the instance's SSH key with ``ssh-keygen -Y sign -n driftgate-checkpoint``.

Where (``DRIFTGATE_CHECKPOINTS``): a directory (one file per checkpoint,
created exclusively, never overwritten), or ``git:URL`` for the ref
``refs/driftgate/audit`` of a Git repository (one commit per checkpoint on the
one before, pushed without force). The key: ``DRIFTGATE_INSTANCE_KEY`` (a
private key file, or a ``.pub`` whose private half is in ssh-agent); unset,
``$DRIFTGATE_HOME/instance_key`` is made on first use.

`read_log` and `compare` are pure: ``driftgate audit verify`` (live, or on a
bundle) calls them with the chain's `driftgate.audit.ChainFacts`. The
checkpoints link to each other by hash, so one good signature on the newest
vouches for every one before it. Called by `driftgate.store.Store` (after each
write) and by the ``audit`` CLI and `driftgate.bundle`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import subprocess
import sys
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from driftgate import home
from driftgate.audit import GENESIS, ChainFacts, Entry, Verdict, verify
from driftgate.errors import PermanentError, TransientError
from driftgate.hashing import canonical_json, sha256_hex
from driftgate.models import Stage
from driftgate.secrets import Masker

LOCATION_ENV_VAR = "DRIFTGATE_CHECKPOINTS"
KEY_ENV_VAR = "DRIFTGATE_INSTANCE_KEY"
NAMESPACE = "driftgate-checkpoint"  # ssh-keygen -n: a checkpoint signature is good for nothing else
PRINCIPAL = "driftgate-instance"  # the name the instance key has in allowed_signers
REF = "refs/driftgate/audit"
FORMAT = "driftgate-checkpoint/1"
RUN_TIMEOUT_S = 60  # per ssh-keygen or git call
NOT_CONFIGURED = "no checkpoints configured: truncation and recomputation cannot be detected"

log = logging.getLogger("driftgate.record")


class CheckpointError(TransientError):
    """The checkpoint location or the key cannot be used right now."""

    stage = Stage.RECORD


# ---------------------------------------------------------------- one checkpoint


@dataclass(frozen=True)
class Checkpoint:
    """One signed checkpoint: the exact payload text signed, and its signature."""

    payload: str
    signature: str

    @cached_property
    def data(self) -> dict[str, Any]:
        try:
            data = json.loads(self.payload)
        except ValueError:
            return {}
        return data if isinstance(data, dict) and data.get("format") == FORMAT else {}

    @property
    def index(self) -> int:
        return int(self.data.get("index") or 0)

    @property
    def seq(self) -> int:
        return int(self.data.get("seq") or 0)

    @property
    def chain(self) -> str:
        return str(self.data.get("chain") or "")

    @property
    def head(self) -> str:
        return str(self.data.get("head") or "")

    @property
    def at(self) -> str:
        return str(self.data.get("at") or "")

    @property
    def key(self) -> str:
        return str(self.data.get("key") or "")

    @property
    def prev(self) -> str:
        return str(self.data.get("prev") or "")

    @property
    def digest(self) -> str:
        """What the next checkpoint's ``prev`` names: the hash of this payload."""
        return sha256_hex(self.payload)

    @property
    def name(self) -> str:
        return f"checkpoint #{self.index} ({self.at[:19].replace('T', ' ')})"

    def to_json(self) -> str:
        return json.dumps({"payload": self.payload, "signature": self.signature})

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        """A stored checkpoint; anything unreadable becomes one whose data is empty (and is named as such)."""
        try:
            raw = json.loads(text)
            return cls(payload=str(raw["payload"]), signature=str(raw["signature"]))
        except (ValueError, KeyError, TypeError):
            return cls(payload=text, signature="")


def payload(*, index: int, prev: str, chain: str, seq: int, head: str, database: str, key: str) -> str:
    """The text a checkpoint signs: canonical JSON, one spelling."""
    values = {
        "format": FORMAT,
        "index": index,
        "prev": prev,
        "chain": chain,
        "seq": seq,
        "head": head,
        "at": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        "database": database,
        "key": key,
    }
    return canonical_json(values)


# ---------------------------------------------------------------- keys and signatures


def _run(args: list[str], *, input: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """ssh-keygen or git, bounded: a remote that hangs is one line, not a stuck writer."""
    try:
        return subprocess.run(args, input=input, capture_output=True, text=True, env=env, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CheckpointError(f"{args[0]} {args[1]} did not finish within {RUN_TIMEOUT_S} s") from None


def public_key_of(line: str) -> str:
    """``TYPE BASE64`` from an OpenSSH public key or allowed_signers line ("" if none)."""
    words = line.split()
    for i, word in enumerate(words[:-1]):
        if word.startswith(("ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-")):
            return f"{word} {words[i + 1]}"
    return ""


def fingerprint(key: str) -> str:
    """The SHA256 fingerprint of a public key, as ssh-keygen prints it."""
    result = _run(["ssh-keygen", "-l", "-f", "-"], input=key + "\n")
    words = result.stdout.split()
    return words[1] if result.returncode == 0 and len(words) > 1 else "(not a key)"


class Signer:
    """The instance's SSH key; signs checkpoints with ssh-keygen."""

    def __init__(self, key: Path) -> None:
        self.key = key

    @classmethod
    def from_env(cls, *, create: bool) -> Signer | None:
        """``$DRIFTGATE_INSTANCE_KEY``, else ``$DRIFTGATE_HOME/instance_key`` (made when ``create``)."""
        named = os.environ.get(KEY_ENV_VAR)
        if named:
            path = Path(named).expanduser()
            if not path.exists():
                raise PermanentError(f"{KEY_ENV_VAR} names {path}, which does not exist", stage=Stage.RECORD)
            return cls(path)
        path = home.home() / "instance_key"
        if not path.exists():
            if not create:
                return None
            made = _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", PRINCIPAL, "-f", str(path)])
            if made.returncode:
                raise CheckpointError(f"cannot make the instance key {path}: {made.stderr.strip()}")
            log.warning("made the instance key %s for the record's checkpoints (fingerprint %s)", path, fingerprint(cls(path).public_key))
        return cls(path)

    @cached_property
    def public_key(self) -> str:
        pub = self.key if self.key.suffix == ".pub" else self.key.with_name(self.key.name + ".pub")
        if pub.exists():
            return public_key_of(pub.read_text())
        derived = _run(["ssh-keygen", "-y", "-f", str(self.key)])
        if derived.returncode:
            raise CheckpointError(f"cannot read the public half of the instance key {self.key}: {derived.stderr.strip()}")
        return public_key_of(derived.stdout)

    def sign(self, text: str) -> str:
        signed = _run(["ssh-keygen", "-Y", "sign", "-f", str(self.key), "-n", NAMESPACE], input=text)
        if signed.returncode or "BEGIN SSH SIGNATURE" not in signed.stdout:
            raise CheckpointError(f"ssh-keygen could not sign a checkpoint with {self.key}: {signed.stderr.strip()}")
        return signed.stdout


def allowed_signers_line(key: str) -> str:
    return f'{PRINCIPAL} namespaces="{NAMESPACE}" {key}'


def signature_problem(checkpoint: Checkpoint, trusted: Iterable[str]) -> str:
    """Why ``checkpoint``'s signature is not good by one of the ``trusted`` keys ("" when it is)."""
    keys = sorted({public_key_of(k) for k in trusted} - {""})
    if not checkpoint.signature:
        return f"{checkpoint.name} has no signature"
    if checkpoint.key not in keys:
        return f"{checkpoint.name} names the key {fingerprint(checkpoint.key)}, which is not a trusted instance key"
    with tempfile.TemporaryDirectory(prefix="driftgate-verify-") as tmp:
        allowed, sig = Path(tmp) / "allowed_signers", Path(tmp) / "checkpoint.sig"
        allowed.write_text("".join(allowed_signers_line(k) + "\n" for k in keys))
        sig.write_text(checkpoint.signature)
        checked = _run(
            ["ssh-keygen", "-Y", "verify", "-f", str(allowed), "-I", PRINCIPAL, "-n", NAMESPACE, "-s", str(sig)],
            input=checkpoint.payload,
        )
    if checked.returncode:
        return f"{checkpoint.name}: its signature does not verify with the trusted instance key(s) ({checked.stderr.strip() or checked.stdout.strip()})"
    return ""


# ---------------------------------------------------------------- where they are kept


class Location(ABC):
    """Where checkpoints are kept: read them in order, append one under a lock."""

    description: str

    @abstractmethod
    def read(self) -> Iterator[Checkpoint]:
        """Every checkpoint, oldest first."""

    @abstractmethod
    def append(self, build: Callable[[Checkpoint | None], Checkpoint | None]) -> Checkpoint | None:
        """``build(newest)`` under the location's lock; keep what it returns (None: nothing to add)."""


def location_from_env() -> Location | None:
    spec = os.environ.get(LOCATION_ENV_VAR, "").strip()
    return location_of(spec) if spec else None


def location_of(spec: str) -> Location:
    if spec.startswith("git:"):
        return GitLocation(spec[len("git:") :])
    return DirectoryLocation(Path(spec).expanduser())


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock among the processes appending to one location."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class DirectoryLocation(Location):
    """One file per checkpoint, ``checkpoint-0000000042.json``; files are created
    exclusively (a name taken is never overwritten). Make it a place the
    database's writers cannot rewrite: another machine's share, a WORM mount."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)

    def _file(self, index: int) -> Path:
        return self.path / f"checkpoint-{index:010d}.json"

    def _indexes(self) -> list[int]:
        if not self.path.is_dir():
            return []
        found = []
        for name in os.listdir(self.path):
            if name.startswith("checkpoint-") and name.endswith(".json"):
                try:
                    found.append(int(name[len("checkpoint-") : -len(".json")]))
                except ValueError:
                    continue
        return sorted(found)

    def read(self) -> Iterator[Checkpoint]:
        for index in self._indexes():
            yield Checkpoint.from_json(self._file(index).read_text())

    def append(self, build: Callable[[Checkpoint | None], Checkpoint | None]) -> Checkpoint | None:
        with _locked(self.path / ".lock"):
            indexes = self._indexes()
            newest = Checkpoint.from_json(self._file(indexes[-1]).read_text()) if indexes else None
            made = build(newest)
            if made is None:
                return None
            temp = self.path / f".checkpoint-{os.getpid()}.tmp"
            temp.write_text(made.to_json() + "\n")
            try:
                os.link(temp, self._file(made.index))  # fails if the name is taken: never overwrite
            finally:
                temp.unlink()
            return made


class GitLocation(Location):
    """The ref ``refs/driftgate/audit`` of a Git repository: each checkpoint a
    commit (tree: ``checkpoint.json``) on the one before, pushed without force,
    so a remote that refuses non-fast-forward pushes keeps every one. A local
    bare cache under ``$DRIFTGATE_HOME/checkpoints`` does the plumbing."""

    ATTEMPTS = 5  # pushes that lose a race with another instance are retried on the new tip

    def __init__(self, url: str) -> None:
        self.url = url
        self.description = f"git:{url} {REF}"

    @cached_property
    def cache(self) -> Path:
        path = home.subdir("checkpoints") / (sha256_hex(self.url)[:16] + ".git")
        if not (path / "HEAD").exists():
            self._git("init", "--quiet", "--bare", str(path), git_dir=None)
        return path

    def _git(self, *args: str, git_dir: Path | None | str = "cache", input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["git"] if git_dir is None else ["git", "--git-dir", str(self.cache if git_dir == "cache" else git_dir)]
        env = {
            **os.environ,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "driftgate",
            "GIT_AUTHOR_EMAIL": "driftgate@localhost",
            "GIT_COMMITTER_NAME": "driftgate",
            "GIT_COMMITTER_EMAIL": "driftgate@localhost",
        }
        result = _run([*prefix, *args], input=input, env=env)
        if check and result.returncode:
            raise CheckpointError(f"git {args[0]} for the checkpoints in {Masker()(self.description)} failed: {Masker()(result.stderr.strip())}")
        return result

    def _fetch(self) -> str:
        """The remote's tip of the ref (fetched into the cache); "" when it has none yet."""
        fetched = self._git("fetch", "--quiet", "--no-tags", self.url, f"+{REF}:{REF}", check=False)
        if fetched.returncode:
            if "couldn't find remote ref" not in fetched.stderr:
                raise CheckpointError(f"git fetch of the checkpoints in {Masker()(self.description)} failed: {Masker()(fetched.stderr.strip())}")
            self._git("update-ref", "-d", REF, check=False)  # the remote has none (yet): neither has the cache
            return ""
        return self._git("rev-parse", REF).stdout.strip()

    def read(self) -> Iterator[Checkpoint]:
        with _locked(self.cache / "driftgate.lock"):
            tip = self._fetch()
        if not tip:
            return
        commits = self._git("rev-list", "--reverse", "--first-parent", tip).stdout.split()
        # One cat-file process streams every checkpoint: no process per commit.
        with subprocess.Popen(
            ["git", "--git-dir", str(self.cache), "cat-file", "--batch"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
        ) as batch:  # fmt: skip
            assert batch.stdin is not None and batch.stdout is not None
            for commit in commits:
                batch.stdin.write(f"{commit}:checkpoint.json\n".encode())
                batch.stdin.flush()
                header = batch.stdout.readline().split()
                if len(header) < 3 or header[1] == b"missing":
                    yield Checkpoint(payload=f"(commit {commit} holds no checkpoint.json)", signature="")
                    continue
                body = batch.stdout.read(int(header[2]) + 1)[:-1]
                yield Checkpoint.from_json(body.decode())
            batch.stdin.close()

    def append(self, build: Callable[[Checkpoint | None], Checkpoint | None]) -> Checkpoint | None:
        with _locked(self.cache / "driftgate.lock"):
            for _ in range(self.ATTEMPTS):
                tip = self._fetch()
                newest = Checkpoint.from_json(self._git("show", f"{tip}:checkpoint.json").stdout) if tip else None
                made = build(newest)
                if made is None:
                    return None
                blob = self._git("hash-object", "-w", "--stdin", input=made.to_json() + "\n").stdout.strip()
                tree = self._git("mktree", input=f"100644 blob {blob}\tcheckpoint.json\n").stdout.strip()
                message = f"driftgate checkpoint #{made.index}: seq {made.seq}, head {made.head[:16]}\n"
                commit = self._git("commit-tree", tree, *(["-p", tip] if tip else []), input=message).stdout.strip()
                pushed = self._git("push", "--quiet", self.url, f"{commit}:{REF}", check=False)
                if pushed.returncode == 0:
                    self._git("update-ref", REF, commit)
                    return made
                if "rejected" not in pushed.stderr and "fetch first" not in pushed.stderr and "non-fast-forward" not in pushed.stderr:
                    raise CheckpointError(f"git push of a checkpoint to {Masker()(self.description)} failed: {Masker()(pushed.stderr.strip())}")
            raise CheckpointError(f"another writer kept moving {Masker()(self.description)}: the checkpoint was not pushed")


# ---------------------------------------------------------------- writing


def anchor(location: Location, signer: Signer, head: Callable[[], tuple[str, int, str]], database: str) -> Checkpoint | None:
    """Append a checkpoint of the record's head now (``head()`` gives chain,
    seq and row_hash, read under the location's lock, so checkpoints never go
    backwards among writers). Nothing is added when the newest checkpoint
    already names this head. Called by the store after each write commits."""

    def build(newest: Checkpoint | None) -> Checkpoint | None:
        chain, seq, row_hash = head()
        if newest is not None and (newest.chain, newest.seq, newest.head) == (chain, seq, row_hash):
            return None
        if newest is not None and newest.chain == chain and newest.seq > seq:
            log.error(
                "the record ends at seq %d but %s signed seq %d: rows were removed from its end; run `driftgate audit verify`",
                seq, newest.name, newest.seq,
            )  # fmt: skip
        key = signer.public_key
        text = payload(
            index=(newest.index if newest else 0) + 1,
            prev=newest.digest if newest else GENESIS,
            chain=chain,
            seq=seq,
            head=row_hash,
            database=database,
            key=key,
        )
        return Checkpoint(payload=text, signature=signer.sign(text))

    return location.append(build)


# ---------------------------------------------------------------- checking


@dataclass(frozen=True)
class Finding:
    """Something the checkpoints show (kind: checkpoints, truncated, recomputed, recreated)."""

    kind: str
    problem: str


class Mark(NamedTuple):
    """What `compare` needs of one checkpoint (the payload and signature are
    let go after `read_log`, so a long log costs little memory)."""

    index: int
    seq: int
    chain: str
    head: str
    at: str

    @property
    def name(self) -> str:
        return f"checkpoint #{self.index} ({self.at[:19].replace('T', ' ')})"


@dataclass
class Log:
    """The checkpoint log as `read_log` found it."""

    marks: list[Mark] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    newest: Checkpoint | None = None


def read_log(checkpoints: Iterable[Checkpoint]) -> Log:
    """Walk the checkpoints once: numbered 1, 2, 3 … with no gap, each naming
    the hash of the one before. Those links let one good signature on the
    newest (`signature_problem`) vouch for every checkpoint before it."""
    log_ = Log()
    for position, checkpoint in enumerate(checkpoints, start=1):
        if log_.findings:
            continue
        if not checkpoint.data:
            log_.findings.append(Finding("checkpoints", f"checkpoint {position} cannot be read: {checkpoint.payload[:80]!r}"))
        elif checkpoint.index != position:
            log_.findings.append(
                Finding(
                    "checkpoints",
                    f"checkpoint #{min(position, checkpoint.index)} is missing or out of place (found #{checkpoint.index} "
                    f"where #{position} belongs): checkpoints were removed or added",
                )
            )
        elif checkpoint.prev != (log_.newest.digest if log_.newest else GENESIS):
            log_.findings.append(Finding("checkpoints", f"{checkpoint.name} does not follow checkpoint #{position - 1}: a checkpoint was altered"))
        else:
            log_.marks.append(Mark(checkpoint.index, checkpoint.seq, sys.intern(checkpoint.chain), checkpoint.head, checkpoint.at))
            log_.newest = checkpoint
    return log_


def compare(marks: Sequence[Mark], facts: ChainFacts) -> list[Finding]:
    """What the checkpoints say about the chain: a database deleted and started
    anew, rows cut from its end, a chain recomputed from some row on."""
    findings: list[Finding] = []
    own = [m for m in marks if facts.chain and m.chain == facts.chain]
    foreign = [m for m in marks if m.chain != facts.chain]
    if foreign and facts.last_seq == 0:
        gone = foreign[-1]
        findings.append(Finding("recreated", f"the record is empty, but {gone.name} signed seq {gone.seq} (head {gone.head[:16]}) of chain {gone.chain[:16]}: the database was deleted or emptied"))
    elif foreign and facts.chain:
        gone = foreign[-1]
        if own and own[0].index > gone.index:
            since = f"its checkpoints begin with {own[0].name}"
        else:
            since = f"its first row is dated {facts.chain_started[:19].replace('T', ' ')}"
        findings.append(
            Finding(
                "recreated",
                f"the database was deleted and started anew (or rewritten from its first row): {gone.name} signed seq "
                f"{gone.seq} of chain {gone.chain[:16]}, but this record is chain {facts.chain[:16]}, and {since}",
            )
        )
    beyond = [m for m in own if m.seq > facts.last_seq]
    if beyond:
        cut = max(beyond, key=lambda m: m.seq)
        findings.append(Finding("truncated", f"rows were cut from the end of the record: {cut.name} signed seq {cut.seq} (head {cut.head[:16]}), the record ends at seq {facts.last_seq}"))
    within = sorted((m for m in own if m.seq <= facts.last_seq), key=lambda m: (m.seq, m.index))
    bad = next((m for m in within if facts.hashes.get(m.seq) != m.head), None)
    if bad is not None:
        good = [m for m in within if m.seq < bad.seq and facts.hashes.get(m.seq) == m.head]
        since = f"after seq {good[-1].seq} (which {good[-1].name} still vouches for)" if good else "from its first rows on"
        findings.append(
            Finding(
                "recomputed",
                f"the chain was recomputed: seq {bad.seq} now hashes to {facts.hashes.get(bad.seq, '')[:16]}, but {bad.name} "
                f"signed {bad.head[:16]}; rows {since} were rewritten",
            )
        )
    return findings


@dataclass
class Report:
    """Everything ``driftgate audit verify`` says, live or on a bundle."""

    verdict: Verdict
    facts: ChainFacts
    location: str = ""  # "" when no checkpoints are configured
    log: Log = field(default_factory=Log)
    trusted: list[str] = field(default_factory=list)  # fingerprints of the keys checkpoints were checked with
    notes: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list[Finding]:
        return self.log.findings

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not self.findings

    @property
    def first(self) -> Finding | None:
        if not self.verdict.ok:
            return Finding(self.verdict.kind, self.verdict.problem)
        return self.findings[0] if self.findings else None

    def to_json(self) -> dict[str, Any]:
        first = self.first
        newest = self.log.newest
        return {
            "ok": self.ok,
            "entries": self.verdict.entries,
            "head": self.verdict.head,
            "problem": first.problem if first else "",
            "kind": first.kind if first else "",
            "table": self.verdict.table,
            "id": self.verdict.id,
            "chain": self.facts.chain,
            "findings": [{"kind": f.kind, "problem": f.problem} for f in self.findings],
            "checkpoints": {
                "configured": bool(self.location),
                "location": self.location,
                "count": len(self.log.marks),
                "newest": {"index": newest.index, "seq": newest.seq, "head": newest.head, "at": newest.at} if newest else None,
                "trusted_keys": self.trusted,
            },
            "notes": self.notes,
        }


def verify_record(
    entries: Iterable[Entry], checkpoints: Iterable[Checkpoint] | None, *, location: str, trusted: Sequence[str] = ()
) -> Report:
    """The chain and, when there are checkpoints, the checkpoints against it.
    ``trusted``: public keys the newest checkpoint must be signed by; empty
    means the key the newest checkpoint names (said in a note, with its
    fingerprint, for the auditor to compare). Called by the audit CLI."""
    if checkpoints is None:
        verdict = verify(entries)
        return Report(verdict=verdict, facts=ChainFacts(), notes=[NOT_CONFIGURED])
    log_ = read_log(checkpoints)
    facts = ChainFacts(hashes={m.seq: "" for m in log_.marks})
    verdict = verify(entries, facts=facts)
    report = Report(verdict=verdict, facts=facts, location=location, log=log_)
    newest = log_.newest
    if newest is None:
        if verdict.entries:
            report.notes.append(
                f"no checkpoints in {location}: the record's {verdict.entries} entries are not anchored, so truncation "
                "and recomputation cannot be detected"
            )
        return report
    keys = [k for k in (public_key_of(t) for t in trusted) if k]
    if not keys:
        keys = [newest.key]
        report.notes.append(
            f"the checkpoints were checked with the key they name, {fingerprint(newest.key)}: compare it with the "
            "instance key you know, or pass --trusted-keys"
        )
    report.trusted = [fingerprint(k) for k in keys]
    if not log_.findings:
        problem = signature_problem(newest, keys)
        if problem:
            log_.findings.append(Finding("checkpoints", problem))
    log_.findings.extend(compare(log_.marks, facts))
    if verdict.ok and not log_.findings and facts.last_seq > newest.seq and newest.chain == facts.chain:
        report.notes.append(
            f"seq {newest.seq + 1}-{facts.last_seq} are newer than the newest checkpoint (written since, or their checkpoint failed)"
        )
    return report
