"""Tamper evidence for the record: the hash chain, its verification, and exports.

Every row the record appends (a run's start, its end with its changes, a
drift event, an environment status) carries ``seq`` (its place in one chain
per database), ``prev_hash`` (the ``row_hash`` of the entry before it) and
``row_hash`` = sha256 over its table name and its canonical content, the
``prev_hash`` included. A run row also holds ``changes_hash`` over its change
rows, so a change edited in place breaks its run's hash too.

`row_hash` is called by the store (on every append) and by the migrations
(when older records are brought into the chain); `verify` and `export` by
``driftgate audit``. Pure functions over plain values: no database here, the
store hands the rows over.
"""

from __future__ import annotations

import csv
import json
import textwrap
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from datetime import datetime
from typing import Any, TextIO

from driftgate.hashing import canonical_json, sha256_hex

GENESIS = "0" * 64  # the prev_hash of the first entry of a chain

# Columns that are not content: the row's own hash, and ids the database assigns.
NOT_CONTENT = frozenset({"id", "row_hash", "run_pk"})
# Columns added after rows were written: left out of the content while NULL, so
# the rows written before them (and new rows that leave them empty) hash as ever.
ADDED_LATER = frozenset({"origin"})


def canonical(values: Mapping[str, Any]) -> str:
    """One spelling per value, whichever database it was read back from:
    sorted keys, no spaces, datetimes as ISO text (naive UTC, microseconds)."""
    content = {k: v for k, v in values.items() if k not in NOT_CONTENT and not (k in ADDED_LATER and v is None)}
    return canonical_json(content, ascii=False, default=_plain)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if hasattr(value, "value"):  # enums
        return value.value
    raise TypeError(f"cannot hash a {type(value).__name__} in the record")


def row_hash(table: str, values: Mapping[str, Any]) -> str:
    """The hash of one chain entry; ``values`` holds its seq and prev_hash."""
    return sha256_hex(f"{table}\n{canonical(values)}")


def changes_hash(changes: Sequence[Mapping[str, Any]]) -> str:
    """The hash of a run's change rows, in their order."""
    return sha256_hex("\n".join(canonical(c) for c in changes))


# ---------------------------------------------------------------- verify


@dataclass(frozen=True)
class Entry:
    """One chained row as verify sees it (built by `Store.chain_entries`)."""

    table: str
    id: int
    seq: int
    prev_hash: str
    row_hash: str
    content: Mapping[str, Any]  # every column (id and row_hash are ignored)
    changes: Sequence[Mapping[str, Any]] | None = None  # runs only: its change rows
    label: str = ""  # for people: environment and time

    @property
    def name(self) -> str:
        return f"{self.table} #{self.id} (seq {self.seq}{', ' + self.label if self.label else ''})"

    @property
    def changes_ok(self) -> bool:
        return self.changes is None or changes_hash(self.changes) == self.content.get("changes_hash")

    @property
    def hash_ok(self) -> bool:
        return self.changes_ok and row_hash(self.table, self.content) == self.row_hash

    @property
    def when(self) -> str:
        """When the row was written, as ISO text (naive UTC)."""
        for key in ("started_at", "detected_at", "recorded_at"):
            value = self.content.get(key)
            if value:
                return value.isoformat(timespec="microseconds") if isinstance(value, datetime) else str(value)
        return ""


@dataclass(frozen=True)
class Verdict:
    """What `verify` found: ok, or the first problem (kind: altered, removed, inserted)."""

    entries: int
    head: str  # the last row_hash: keep it elsewhere to detect a truncated tail
    problem: str = ""
    kind: str = ""
    table: str = ""
    id: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass
class ChainFacts:
    """What the checkpoints are compared with (`driftgate.checkpoints.compare`):
    the chain's identity (the row_hash of its first entry), where it ends, and
    the stored row_hash at the places checkpoints name."""

    chain: str = ""  # "" for an empty record
    chain_started: str = ""  # the first entry's time, ISO
    last_seq: int = 0  # the highest seq stored, verified or not
    last_hash: str = ""
    hashes: dict[int, str] = field(default_factory=dict)

    def note(self, entry: Entry, *, first: bool) -> None:
        """Take in one entry, in chain order (``first``: the first one walked)."""
        if first and entry.seq == 1:
            self.chain, self.chain_started = entry.row_hash, entry.when
        if entry.seq >= self.last_seq:
            self.last_seq, self.last_hash = entry.seq, entry.row_hash
        if entry.seq in self.hashes and not self.hashes[entry.seq]:
            self.hashes[entry.seq] = entry.row_hash


def verify(entries: Iterable[Entry], *, facts: ChainFacts | None = None) -> Verdict:
    """Walk the chain in seq order; name the first row that was altered,
    removed or inserted. Called by ``driftgate audit verify``.

    ``entries`` come in (seq, table, id) order (`Store.iter_chain` and bundles
    stream them so; a list is sorted here) and are looked at one at a time with
    two entries of lookahead: memory stays flat however long the record. When
    ``facts`` is given, it is filled in along the way (its ``hashes`` keys say
    which places to keep)."""
    if isinstance(entries, list):
        entries = sorted(entries, key=lambda e: (e.seq, e.table, e.id))
    stream = iter(entries)
    window: deque[Entry] = deque(islice(stream, 3))
    prev_hash, prev_seq, prev_name = GENESIS, 0, "the start of the chain"
    total, first_problem = 0, None
    while window:
        entry = window.popleft()
        following = next(stream, None)
        if following is not None:
            window.append(following)
        total += 1
        if facts is not None:
            facts.note(entry, first=total == 1)
        if first_problem is not None:
            continue  # keep counting, and keep the facts: the checkpoints are compared with what is stored
        if entry.hash_ok and entry.prev_hash == prev_hash and entry.seq == prev_seq + 1:
            prev_hash, prev_seq, prev_name = entry.row_hash, entry.seq, entry.name
            continue
        first_problem = (entry, list(window)[:2], prev_hash, prev_seq, prev_name)
    if first_problem is not None:
        return _problem(*first_problem, total)
    return Verdict(entries=total, head=prev_hash)


def _problem(entry: Entry, following: list[Entry], prev_hash: str, prev_seq: int, prev_name: str, total: int) -> Verdict:
    def verdict(kind: str, text: str) -> Verdict:
        return Verdict(entries=total, head=prev_hash, problem=text, kind=kind, table=entry.table, id=entry.id)

    # The chain goes around this row (the next genuine row still links to the
    # row before it), or it repeats a place already taken: it was put in.
    if entry.seq <= prev_seq or any(n.prev_hash == prev_hash and n.hash_ok for n in following):
        return verdict("inserted", f"{entry.name} was inserted: it is not part of the chain after {prev_name}")
    if entry.seq > prev_seq + 1:
        missing = f"seq {prev_seq + 1}" if entry.seq == prev_seq + 2 else f"seq {prev_seq + 1}-{entry.seq - 1}"
        return verdict("removed", f"a row was removed ({missing}) between {prev_name} and {entry.name}")
    if not entry.changes_ok:
        return verdict("altered", f"{entry.name} was altered: its change rows no longer match its hash")
    if entry.prev_hash != prev_hash and entry.hash_ok:
        return verdict("inserted", f"{entry.name} was inserted: it does not link to {prev_name}")
    return verdict("altered", f"{entry.name} was altered: its content no longer matches its hash")


# ---------------------------------------------------------------- export

# One CSV line per run: the columns an auditor filters on. JSON holds everything.
CSV_COLUMNS = (
    "id", "run_id", "environment", "kind", "mode", "trigger", "requested_by", "outcome",
    "started_at", "finished_at", "repo", "ref", "commit", "commit_author", "signed_by",
    "plan_hash", "change_count", "risky_count", "approver", "approval_decision",
    "approval_reason", "approval_decided_at", "approval_plan_hash", "failed_stage",
    "reason", "flow_run_id", "flow_run_url", "version", "seq", "row_hash",
)  # fmt: skip


def write_csv(runs: Iterable[Mapping[str, Any]], out: TextIO) -> None:
    """Runs (as `StoredRun.model_dump(mode="json")`) as CSV, one line written per run."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for run in runs:
        approval = run.get("approval") or {}
        writer.writerow(
            {
                **run,
                "change_count": len(run.get("changes") or []),
                "risky_count": sum(bool(c.get("risky")) for c in run.get("changes") or []),
                "approver": approval.get("approver") or "",
                "approval_decision": approval.get("decision") or "",
                "approval_reason": approval.get("reason") or "",
                "approval_decided_at": approval.get("decided_at") or "",
                "approval_plan_hash": approval.get("plan_hash") or "",
            }
        )


def write_json(runs: Iterable[Mapping[str, Any]], out: TextIO) -> None:
    """Runs as one JSON array, written a run at a time: the same text as
    ``json.dumps(list(runs), indent=2)`` without holding the list."""
    first = True
    for run in runs:
        out.write(("[\n" if first else ",\n") + textwrap.indent(json.dumps(run, indent=2), "  "))
        first = False
    out.write("[]" if first else "\n]")
