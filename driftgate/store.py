"""record: the append-only, hash-chained audit log; SQLite by default, PostgreSQL for teams.

`Store` opens the database named by ``DRIFTGATE_DATABASE_URL`` (default a
SQLite file under ``$DRIFTGATE_HOME``, in WAL mode), brings its schema up to
date with the Alembic migrations in `driftgate.migrations`, and then only
ever appends:

- ``run_starts``: one row when a run starts (`start_run`); a start that never
  got its end is marked ``interrupted`` by the next start of that environment;
- ``runs`` and ``changes``: a run's end with one row per change, in one
  transaction (`record`);
- ``drift_events`` and ``environment_status`` (`record_drift`, `record_status`,
  and from `record` itself): what drift was seen, and per environment the last
  attempted and last applied revision and the inventory of applied objects.

Every appended row is an entry of one hash chain per database (see
`driftgate.audit`); the code has no UPDATE or DELETE. After each write, a
signed checkpoint of the chain's head goes outside the database when
``DRIFTGATE_CHECKPOINTS`` names a place (`driftgate.checkpoints`). Reads take
no lock; writers wait for one another within a bounded time
(`driftgate.recordlock`). Called by the record tasks, the CLI (plan, history,
show, status, audit) and the scheduling work.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from heapq import merge as merge_sorted  # named apart from session merge, which the no-UPDATE test looks for
from subprocess import SubprocessError
from typing import Any
from uuid import uuid4

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Integer, and_, event, exists, insert, select, tuple_
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Field, SQLModel, create_engine

from driftgate import audit, checkpoints, home, recordlock
from driftgate.errors import DriftgateError, TransientError
from driftgate.models import Frozen, Kind, Mode, Outcome, RunRecord, RunStart, Stage
from driftgate.secrets import Masker

# ---------------------------------------------------------------- tables
# These must match the latest migration (a test compares them with Alembic).


def _time(*, index: bool = False, nullable: bool = False) -> Column[Any]:
    """A timestamp column holding naive UTC (see `_db_time`)."""
    return Column(DateTime, nullable=nullable, index=index)


class _RunIdentity(SQLModel):
    """Columns a run's start and its end share."""

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(index=True)
    run_id: str = Field(index=True)
    environment: str = Field(index=True)
    kind: str
    mode: str
    trigger: str
    requested_by: str


class RunRow(_RunIdentity, table=True):
    """A run's end: one row per run, with everything an auditor asks."""

    __tablename__ = "runs"

    outcome: str = Field(index=True)
    started_at: datetime = Field(sa_column=_time(index=True))
    finished_at: datetime = Field(sa_column=_time())
    repo: str
    ref: str
    commit: str = Field(index=True)
    commit_author: str
    signed_by: str | None
    plan_hash: str
    change_count: int
    risky_count: int
    approver: str | None = Field(index=True)
    approval_decision: str | None
    approval: dict[str, Any] | None = Field(sa_column=Column(JSON))
    hosts: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    failed_stage: str | None
    reason: str
    flow_run_id: str | None = Field(index=True)
    flow_run_url: str | None
    version: str
    changes_hash: str
    prev_hash: str
    row_hash: str


class ChangeRow(SQLModel, table=True):
    """One change of a run: a host's task, or a Kubernetes object. Covered by its run's changes_hash."""

    __tablename__ = "changes"

    id: int | None = Field(default=None, primary_key=True)
    run_pk: int = Field(sa_column=Column(Integer, ForeignKey("runs.id"), nullable=False, index=True))
    position: int
    action: str
    target: str
    name: str
    module: str
    kind: str
    namespace: str
    api_version: str
    risky: bool
    rules: list[str] = Field(sa_column=Column(JSON, nullable=False))
    diff: str  # masked before it reaches the engine's models
    result: str
    health: str
    extra: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class RunStartRow(_RunIdentity, table=True):
    """A run's start, written before anything else the run does."""

    __tablename__ = "run_starts"

    started_at: datetime = Field(sa_column=_time())
    flow_run_id: str | None
    flow_run_url: str | None
    version: str
    host: str  # where the run's process was: to tell a crashed run from one still going
    pid: int
    prev_hash: str
    row_hash: str


class DriftEventRow(SQLModel, table=True):
    __tablename__ = "drift_events"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(index=True)
    environment: str = Field(index=True)
    detected_at: datetime = Field(sa_column=_time(index=True))
    run_id: str
    commit: str
    plan_hash: str
    change_count: int
    changes: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    action: str  # reported | healed | ...
    prev_hash: str
    row_hash: str


class EnvironmentStatusRow(SQLModel, table=True):
    """Appended whenever an environment's status moves on; the newest row is its status."""

    __tablename__ = "environment_status"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(index=True)
    environment: str = Field(index=True)
    recorded_at: datetime = Field(sa_column=_time())
    run_id: str
    last_attempted_revision: str
    last_attempted_at: datetime | None = Field(sa_column=_time(nullable=True))
    last_attempted_outcome: str
    last_applied_revision: str
    last_applied_at: datetime | None = Field(sa_column=_time(nullable=True))
    inventory: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    prev_hash: str
    row_hash: str


CHAINED: tuple[type[SQLModel], ...] = (RunRow, RunStartRow, DriftEventRow, EnvironmentStatusRow)
_CHANGE_FIELDS = ("action", "target", "name", "module", "kind", "namespace", "api_version", "risky", "rules", "diff", "result", "health")
_CHAIN_LOCK = 0x64726674  # PostgreSQL advisory lock key: one chain writer at a time

log = logging.getLogger("driftgate.record")


# ---------------------------------------------------------------- what the store returns


class StoredRun(RunRecord):
    """A `RunRecord` as read back, with its row id and place in the chain."""

    id: int
    seq: int = 0
    row_hash: str = ""


class DriftEvent(Frozen):
    """Drift seen in an environment (by a drift check, or healed by a sync)."""

    environment: str
    detected_at: datetime
    commit: str = ""
    plan_hash: str = ""
    changes: list[dict[str, Any]] = []
    action: str = "reported"
    run_id: str = ""
    id: int | None = None


class OpenRun(RunStart):
    """A run's start, as `Store.runs_in_progress` finds it: where it runs, and
    whether it has ended since (then it no longer works)."""

    host: str = ""
    pid: int = 0
    ended: bool = False


class EnvironmentStatus(Frozen):
    """Where an environment stands: what was last attempted, what was last applied."""

    environment: str
    recorded_at: datetime
    run_id: str = ""
    last_attempted_revision: str = ""
    last_attempted_at: datetime | None = None
    last_attempted_outcome: str = ""
    last_applied_revision: str = ""
    last_applied_at: datetime | None = None
    inventory: list[dict[str, Any]] = []  # applied objects: what a prune may remove


class Store:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or home.database_url()
        self.engine = _engine(self.url)

    # ------------------------------------------------------------ appending

    def start_run(self, start: RunStart) -> list[int]:
        """Append the start of a run. Earlier starts of the same environment that
        never got an end, and whose process is gone, are first recorded as
        ``interrupted``; returns the record ids of those."""
        with self._writing(f"the start of a run of {start.environment!r}") as conn:
            marked = self._mark_interrupted(conn, start)
            values = start.model_dump(mode="python")
            values.update(kind=start.kind.value, mode=start.mode.value, started_at=_db_time(start.started_at))
            self._append(conn, RunStartRow, {**values, "host": socket.gethostname(), "pid": os.getpid()})
        return marked

    def mark_interrupted(self, noticed_by: RunStart) -> list[int]:
        """What `start_run` does first, alone: for a run that has started and is
        waiting (for its environment's sync slot), so a holder that dies while it
        waits is noticed. Returns the record ids of the runs marked."""
        with self._writing(f"interrupted runs of {noticed_by.environment!r}") as conn:
            return self._mark_interrupted(conn, noticed_by)

    def record(self, run: RunRecord, *, inventory: list[dict[str, Any]] | None = None) -> int:
        """Append a run's end with its changes (one transaction); returns its id.

        A sync or rollback also moves the environment's status on (with
        ``inventory``, the applied objects, when the target has one); a drift
        check that found changes appends a drift event.
        """
        with self._writing(f"the record of {run.environment!r}") as conn:
            return self._append_run(conn, run, inventory=inventory)

    def record_drift(self, drift: DriftEvent) -> int:
        with self._writing(f"a drift event of {drift.environment!r}") as conn:
            return self._append_drift(conn, drift)

    def record_status(
        self,
        environment: str,
        *,
        run_id: str = "",
        attempted: str | None = None,
        outcome: str = "",
        applied: str | None = None,
        inventory: list[dict[str, Any]] | None = None,
    ) -> int:
        """Move an environment's status on; what is not given is carried over."""
        with self._writing(f"the status of {environment!r}") as conn:
            return self._append_status(conn, environment, run_id, attempted, outcome, applied, inventory)

    # ------------------------------------------------------------ reading

    def history(
        self,
        environment: str | None = None,
        *,
        limit: int | None = 50,
        since: datetime | None = None,
        until: datetime | None = None,
        commit: str | None = None,
        approver: str | None = None,
    ) -> list[StoredRun]:
        """Runs newest first; ``commit`` matches a prefix of the SHA."""
        runs = RunRow.__table__
        query = select(runs).order_by(runs.c.started_at.desc(), runs.c.id.desc())
        if environment:
            query = query.where(runs.c.environment == environment)
        if since:
            query = query.where(runs.c.started_at >= _db_time(since))
        if until:
            query = query.where(runs.c.started_at < _db_time(until))
        if commit:
            query = query.where(runs.c.commit.startswith(commit, autoescape=True))
        if approver:
            query = query.where(runs.c.approver == approver)
        if limit:
            query = query.limit(limit)
        with self._reading() as conn:
            rows = conn.execute(query).mappings().all()
            changes = _changes_of(conn, [r["id"] for r in rows])
        return [_stored(row, changes.get(row["id"], [])) for row in rows]

    def get(self, ref: str) -> StoredRun | None:
        """One run by record id, run id (or a prefix of 8+ characters) or Prefect flow-run id."""
        runs = RunRow.__table__
        if ref.isdigit():
            where = runs.c.id == int(ref)
        elif len(ref) >= 8:
            where = (runs.c.flow_run_id == ref) | runs.c.run_id.startswith(ref, autoescape=True)
        else:
            return None
        with self._reading() as conn:
            row = conn.execute(select(runs).where(where).order_by(runs.c.id.desc()).limit(1)).mappings().first()
            if row is None:
                return None
            return _stored(row, _changes_of(conn, [row["id"]]).get(row["id"], []))

    def for_flow_run(self, flow_run_id: str) -> StoredRun | None:
        """The run recorded by one Prefect flow run, if any."""
        runs = RunRow.__table__
        with self._reading() as conn:
            row = conn.execute(
                select(runs).where(runs.c.flow_run_id == flow_run_id).order_by(runs.c.id.desc()).limit(1)
            ).mappings().first()
            return _stored(row, _changes_of(conn, [row["id"]]).get(row["id"], [])) if row else None

    def runs_in_progress(
        self, environment: str, *, kinds: Sequence[Kind] = (Kind.SYNC, Kind.ROLLBACK), since: datetime | None = None
    ) -> list[OpenRun]:
        """Runs of ``kinds`` that may be working now: started and not ended
        (on this machine: their process is alive; elsewhere that cannot be told,
        so they count). With ``since``, also those that started or ended (other
        than interrupted) since then. Oldest first. Used to say whom a waiting
        sync waits for, and by the drift check to stay clear of syncs."""
        starts, runs = RunStartRow.__table__, RunRow.__table__
        query = (
            select(starts, runs.c.outcome, runs.c.finished_at)
            .select_from(starts.outerjoin(runs, runs.c.run_id == starts.c.run_id))
            .where(starts.c.environment == environment, starts.c.kind.in_([k.value for k in kinds]))
            .order_by(starts.c.seq)
        )
        if since is None:
            query = query.where(runs.c.id.is_(None))
        else:
            since_db = _db_time(since)
            ended_since = and_(runs.c.outcome != Outcome.INTERRUPTED.value, runs.c.finished_at >= since_db)
            query = query.where(runs.c.id.is_(None) | ended_since | (starts.c.started_at >= since_db))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        found = []
        for row in rows:
            if row["outcome"] is None and not _still_running(row["host"], row["pid"], elsewhere=True):
                if since is None or _aware(row["started_at"]) < since:
                    continue  # died (the next start records it as interrupted)
            data = {k: row[k] for k in OpenRun.model_fields if k in row}
            found.append(OpenRun(**{**data, "started_at": _aware(row["started_at"]), "ended": row["outcome"] is not None}))
        return found

    def status(self, environment: str) -> EnvironmentStatus | None:
        """The newest status row of an environment (None if it never synced)."""
        with self._reading() as conn:
            row = _latest_status(conn, environment)
        if row is None:
            return None
        data = {k: row[k] for k in EnvironmentStatus.model_fields if k in row}
        for key in ("recorded_at", "last_attempted_at", "last_applied_at"):
            data[key] = _aware(data[key])
        return EnvironmentStatus(**data)

    def drift_events(self, environment: str | None = None, *, since: datetime | None = None, limit: int = 100) -> list[DriftEvent]:
        """Drift events newest first."""
        table = DriftEventRow.__table__
        query = select(table).order_by(table.c.seq.desc()).limit(limit)
        if environment:
            query = query.where(table.c.environment == environment)
        if since:
            query = query.where(table.c.detected_at >= _db_time(since))
        with self._reading() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            DriftEvent(**{**{k: r[k] for k in DriftEvent.model_fields if k in r}, "detected_at": _aware(r["detected_at"])})
            for r in rows
        ]

    def chain_entries(self) -> list[audit.Entry]:
        """Every chained row, in chain order (for tests and small records; verify streams `iter_chain`)."""
        return list(self.iter_chain())

    def iter_chain(self) -> Iterator[audit.Entry]:
        """Every chained row in (seq, table, id) order, a page at a time from each
        table: `audit.verify` and the bundle export walk a record of any length
        with flat memory. One read transaction: on SQLite one consistent snapshot."""
        with self._reading() as conn:
            yield from merge_sorted(*(_pages(conn, model) for model in CHAINED), key=lambda e: (e.seq, e.table, e.id))

    def head(self) -> tuple[str, int, str]:
        """The chain's identity (the row_hash of its first entry), its last seq and
        that entry's row_hash; ("", 0, GENESIS) for an empty record. For checkpoints."""
        with self._reading() as conn:
            seq, head = _head(conn)
            first = ""
            for model in CHAINED:
                t = model.__table__
                row = conn.execute(select(t.c.row_hash).where(t.c.seq == 1).order_by(t.c.id).limit(1)).first()
                if row:
                    first = row.row_hash
                    break
        return first, seq, head

    # ------------------------------------------------------------ internals

    @contextmanager
    def _writing(self, what: str) -> Iterator[Connection]:
        """One write transaction holding the chain (SQLite ``BEGIN IMMEDIATE``,
        PostgreSQL an advisory lock), so two writers cannot both extend the same
        head. Waits for another writer within a bounded time (`driftgate.recordlock`)."""
        with recordlock.write_transaction(self.engine, what, pg_lock=_CHAIN_LOCK) as conn:
            yield conn
        self._anchor()

    def _anchor(self) -> None:
        """After a write commits: a signed checkpoint of the head, outside the
        database, when ``DRIFTGATE_CHECKPOINTS`` names a place. The run is
        recorded already, so a checkpoint that cannot be written is logged, not
        raised: the next one covers this head too, and `audit verify` shows
        the rows no checkpoint covers yet."""
        try:
            location = checkpoints.location_from_env()
            if location is None:
                return
            signer = checkpoints.Signer.from_env(create=True)
            assert signer is not None
            checkpoints.anchor(location, signer, self.head, database=recordlock.describe(self.engine))
        except (DriftgateError, OSError, SubprocessError) as exc:
            log.error("the record was written, but its checkpoint was not: %s", Masker()(str(exc)))

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A read: no write lock, never waits for a writer (WAL on SQLite); a
        database that cannot be read is one line, not a traceback."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise TransientError(
                f"cannot read the record database {recordlock.describe(self.engine)}: {Masker()(str(exc.orig))}",
                stage=Stage.RECORD,
            ) from None

    def _append(self, conn: Connection, model: type[SQLModel], values: dict[str, Any]) -> int:
        """Insert one chain entry after the current head; returns its id."""
        table = model.__table__
        seq, prev_hash = _head(conn)
        row = {**values, "seq": seq + 1, "prev_hash": prev_hash}
        missing = set(table.c.keys()) - set(row) - audit.NOT_CONTENT
        assert not missing, f"{table.name}: no value for {sorted(missing)}"  # the hash must cover every column
        row["row_hash"] = audit.row_hash(table.name, row)
        return conn.execute(insert(table).values(row)).inserted_primary_key[0]

    def _append_run(self, conn: Connection, run: RunRecord, *, inventory: list[dict[str, Any]] | None) -> int:
        changes = [_change_values(i, c) for i, c in enumerate(run.changes)]
        approval = run.approval or {}
        values = run.model_dump(mode="python", exclude={"changes", "id", "seq", "row_hash"})
        values.update(
            run_id=run.run_id or uuid4().hex,
            kind=run.kind.value,
            mode=run.mode.value,
            outcome=run.outcome.value,
            failed_stage=run.failed_stage.value if run.failed_stage else None,
            started_at=_db_time(run.started_at),
            finished_at=_db_time(run.finished_at),
            change_count=len(changes),
            risky_count=sum(c["risky"] for c in changes),
            approver=approval.get("approver") if approval.get("required") else None,
            approval_decision=approval.get("decision") if approval.get("required") else None,
            changes_hash=audit.changes_hash(changes),
        )
        pk = self._append(conn, RunRow, values)
        if changes:  # one executemany: 10,000 changes in well under a second
            conn.execute(insert(ChangeRow.__table__), [{**c, "run_pk": pk} for c in changes])
        if run.kind in (Kind.SYNC, Kind.ROLLBACK) and run.commit and run.outcome != Outcome.INTERRUPTED:
            applied = run.commit if run.outcome in (Outcome.APPLIED, Outcome.IN_SYNC) else None
            self._append_status(
                conn, run.environment, values["run_id"], run.commit, run.outcome.value, applied, inventory if applied else None
            )
        if run.kind == Kind.DRIFT and run.outcome == Outcome.DRIFT:
            self._append_drift(
                conn,
                DriftEvent(
                    environment=run.environment,
                    detected_at=run.finished_at,
                    commit=run.commit,
                    plan_hash=run.plan_hash,
                    changes=[{k: c[k] for k in ("action", "target", "name", "kind", "namespace")} for c in changes],
                    run_id=values["run_id"],
                ),
            )
        return pk

    def _append_drift(self, conn: Connection, drift: DriftEvent) -> int:
        values = drift.model_dump(mode="python", exclude={"id"})
        values.update(detected_at=_db_time(drift.detected_at), change_count=len(drift.changes))
        return self._append(conn, DriftEventRow, values)

    def _append_status(
        self,
        conn: Connection,
        environment: str,
        run_id: str,
        attempted: str | None,
        outcome: str,
        applied: str | None,
        inventory: list[dict[str, Any]] | None,
    ) -> int:
        now = _db_time(datetime.now(timezone.utc))
        previous = dict(_latest_status(conn, environment) or {})
        values = {
            "environment": environment,
            "recorded_at": now,
            "run_id": run_id,
            "last_attempted_revision": previous.get("last_attempted_revision", ""),
            "last_attempted_at": previous.get("last_attempted_at"),
            "last_attempted_outcome": previous.get("last_attempted_outcome", ""),
            "last_applied_revision": previous.get("last_applied_revision", ""),
            "last_applied_at": previous.get("last_applied_at"),
            "inventory": previous.get("inventory", []),
        }
        if attempted is not None:
            values.update(last_attempted_revision=attempted, last_attempted_at=now, last_attempted_outcome=outcome)
        if applied is not None:
            values.update(last_applied_revision=applied, last_applied_at=now)
        if inventory is not None:
            values["inventory"] = inventory
        return self._append(conn, EnvironmentStatusRow, values)

    def _mark_interrupted(self, conn: Connection, noticed_by: RunStart) -> list[int]:
        """Append as ``interrupted`` the unended starts of the environment whose process is gone."""
        marked = []
        for row in self._unfinished(conn, noticed_by.environment):
            if row.run_id != noticed_by.run_id and not _still_running(row.host, row.pid):
                marked.append(self._append_run(conn, _interrupted(row, noticed_by=noticed_by), inventory=None))
        return marked

    @staticmethod
    def _unfinished(conn: Connection, environment: str) -> Sequence[Any]:
        """Starts of ``environment`` with no end in ``runs``."""
        starts, runs = RunStartRow.__table__, RunRow.__table__
        ended = exists().where(runs.c.run_id == starts.c.run_id)
        query = select(starts).where(and_(starts.c.environment == environment, ~ended)).order_by(starts.c.seq)
        return conn.execute(query).all()


# ---------------------------------------------------------------- helpers


def _head(conn: Connection) -> tuple[int, str]:
    """The chain's last seq and row_hash: the highest seq over all chained tables."""
    seq, row_hash = 0, audit.GENESIS
    for chained in CHAINED:
        t = chained.__table__
        head = conn.execute(select(t.c.seq, t.c.row_hash).order_by(t.c.seq.desc()).limit(1)).first()
        if head and head.seq > seq:
            seq, row_hash = head.seq, head.row_hash
    return seq, row_hash


_PAGE = 500  # chained rows per query when walking the chain


def _pages(conn: Connection, model: type[SQLModel]) -> Iterator[audit.Entry]:
    """One chained table's rows as `audit.Entry`, in (seq, id) order, a page at a time."""
    table = model.__table__
    after = (0, 0)
    while True:
        query = select(table).where(tuple_(table.c.seq, table.c.id) > after).order_by(table.c.seq, table.c.id).limit(_PAGE)
        rows = conn.execute(query).mappings().all()
        if not rows:
            return
        changes = _changes_of(conn, [r["id"] for r in rows], raw=True) if model is RunRow else {}
        for row in rows:
            when = row.get("started_at") or row.get("detected_at") or row.get("recorded_at")
            yield audit.Entry(
                table=table.name,
                id=row["id"],
                seq=row["seq"],
                prev_hash=row["prev_hash"],
                row_hash=row["row_hash"],
                content=dict(row),
                changes=changes.get(row["id"], []) if model is RunRow else None,
                label=f"{row['environment']}, {when:%Y-%m-%d %H:%M:%S}" if when else row["environment"],
            )
        after = (rows[-1]["seq"], rows[-1]["id"])


def _db_time(value: datetime) -> datetime:
    """Naive UTC: the one form both SQLite and PostgreSQL give back unchanged
    (the hash chain depends on reading back exactly what was written)."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _change_values(position: int, change: dict[str, Any]) -> dict[str, Any]:
    """One `Change` (as the run log dumped it) as a row of ``changes``."""
    row: dict[str, Any] = {"position": position}
    for key in _CHANGE_FIELDS:
        value = change.get(key)
        if key == "risky":
            row[key] = bool(value)
        elif key == "rules":
            row[key] = [str(r) for r in value or ()]
        else:
            row[key] = "" if value is None else str(value)
    row["extra"] = {k: v for k, v in change.items() if k not in _CHANGE_FIELDS}  # fields added later
    return row


def _changes_of(conn: Connection, run_ids: list[int] | None, *, raw: bool = False) -> dict[int, list[dict[str, Any]]]:
    """Change rows by run id, in order; all of them when ``run_ids`` is None."""
    table = ChangeRow.__table__
    found: dict[int, list[dict[str, Any]]] = {}
    if run_ids == []:
        return found
    batches = [None] if run_ids is None else [run_ids[i : i + 500] for i in range(0, len(run_ids), 500)]
    for batch in batches:
        query = select(table).order_by(table.c.run_pk, table.c.position, table.c.id)
        if batch is not None:
            query = query.where(table.c.run_pk.in_(batch))
        for row in conn.execute(query).mappings():
            found.setdefault(row["run_pk"], []).append(dict(row) if raw else _change_dict(row))
    return found


def _change_dict(row: Any) -> dict[str, Any]:
    return {**{key: row[key] for key in _CHANGE_FIELDS}, **(row["extra"] or {})}


def _stored(row: Any, changes: list[dict[str, Any]]) -> StoredRun:
    data = {key: row[key] for key in StoredRun.model_fields if key in row and key != "changes"}
    data.update(
        mode=Mode(row["mode"]),
        kind=Kind(row["kind"]),
        outcome=Outcome(row["outcome"]),
        failed_stage=Stage(row["failed_stage"]) if row["failed_stage"] else None,
        started_at=_aware(row["started_at"]),
        finished_at=_aware(row["finished_at"]),
    )
    return StoredRun(**data, changes=changes)


def _latest_status(conn: Connection, environment: str) -> Any:
    table = EnvironmentStatusRow.__table__
    query = select(table).where(table.c.environment == environment).order_by(table.c.seq.desc()).limit(1)
    return conn.execute(query).mappings().first()


def _interrupted(start: Any, *, noticed_by: RunStart) -> RunRecord:
    """The end of a run whose process died, as the next start records it."""
    return RunRecord(
        run_id=start.run_id,
        environment=start.environment,
        kind=Kind(start.kind),
        mode=Mode(start.mode),
        trigger=start.trigger,
        requested_by=start.requested_by,
        outcome=Outcome.INTERRUPTED,
        started_at=_aware(start.started_at),
        finished_at=noticed_by.started_at,  # when it was noticed: the real end is unknown
        flow_run_id=start.flow_run_id,
        flow_run_url=start.flow_run_url,
        version=start.version,
        reason=(
            f"the run never finished: its process ({start.host}, pid {start.pid}) ended before it recorded an "
            f"outcome; noticed when run {noticed_by.run_id[:12]} started"
        ),
    )


def _still_running(host: str, pid: int, *, elsewhere: bool = False) -> bool:
    """Whether a run's process may still be working. Only a process on this
    machine can be checked; one elsewhere counts as ``elsewhere``: gone when a
    start judges it (runs of one environment are serialised: one deployment,
    concurrency 1), running when a drift check asks whether to stay clear."""
    if host != socket.gethostname():
        return elsewhere
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    from driftgate.migrations import upgrade

    sqlite = url.startswith("sqlite")
    engine = create_engine(url, connect_args={"timeout": recordlock.READ_BUSY_TIMEOUT_S} if sqlite else {})
    if sqlite:

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # SQLAlchemy's recipe: let the "begin" hook below issue BEGIN itself.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            # WAL lets a server, workers and the CLI read while one of them writes.
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # Writers take the write lock up front, so reading the chain's head
            # and appending after it cannot interleave with another writer.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("driftgate_write") else "BEGIN")

    upgrade(engine)
    return engine
