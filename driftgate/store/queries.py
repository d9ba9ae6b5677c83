"""Reading the record: the queries behind `Store`'s read methods, each over an
open connection. Nothing here writes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, select, tuple_
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from driftgate import audit
from driftgate.models import Outcome, RecordedChange, RunPurpose
from driftgate.store.engine import aware, db_time
from driftgate.store.records import DriftEvent, EnvironmentStatus, Pin, StoredRun, Suspension, recorded_change, stored_run
from driftgate.store.tables import (
    CHAINED,
    ChangeRow,
    DriftEventRow,
    EnvironmentStatusRow,
    PinRow,
    RetiredColumnsRow,
    RunRow,
    RunStartRow,
    SuspensionRow,
)

_PAGE = 500  # chained rows per query when walking the chain


def runs(
    conn: Connection,
    *,
    environment: str | None,
    limit: int | None,
    since: datetime | None,
    until: datetime | None,
    commit: str | None,
    approver: str | None,
) -> list[StoredRun]:
    """Runs newest first; ``commit`` matches a prefix of the SHA."""
    table = RunRow.__table__
    query = _in_period(select(table).order_by(table.c.started_at.desc(), table.c.id.desc()), environment, since, until)
    if commit:
        query = query.where(table.c.commit.startswith(commit, autoescape=True))
    if approver:
        query = query.where(table.c.approver == approver)
    if limit:
        query = query.limit(limit)
    rows = conn.execute(query).mappings().all()
    changes = changes_of(conn, [r["id"] for r in rows])
    return [stored_run(row, changes.get(row["id"], [])) for row in rows]


def runs_oldest_first(
    conn: Connection, *, environment: str | None, since: datetime | None, until: datetime | None
) -> Iterator[StoredRun]:
    """Runs in start order, a page at a time (keyset on started_at, id): an
    export of any length holds one page in memory, not the record."""
    table = RunRow.__table__
    query = _in_period(select(table).order_by(table.c.started_at, table.c.id).limit(_PAGE), environment, since, until)
    page = query
    while True:
        rows = conn.execute(page).mappings().all()
        if not rows:
            return
        changes = changes_of(conn, [r["id"] for r in rows])
        yield from (stored_run(row, changes.get(row["id"], [])) for row in rows)
        last = rows[-1]
        page = query.where(tuple_(table.c.started_at, table.c.id) > (last["started_at"], last["id"]))


def _in_period(query: Select[Any], environment: str | None, since: datetime | None, until: datetime | None) -> Select[Any]:
    """``query`` on ``runs`` narrowed to one environment and a start period (each optional)."""
    table = RunRow.__table__
    if environment:
        query = query.where(table.c.environment == environment)
    if since:
        query = query.where(table.c.started_at >= db_time(since))
    if until:
        query = query.where(table.c.started_at < db_time(until))
    return query


def one_run(conn: Connection, where: Any) -> StoredRun | None:
    """The newest run matching ``where`` (a condition on ``runs``), with its changes."""
    table = RunRow.__table__
    row = conn.execute(select(table).where(where).order_by(table.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    return stored_run(row, changes_of(conn, [row["id"]]).get(row["id"], []))


def starts_with_ends(
    conn: Connection, environment: str, *, purposes: Sequence[RunPurpose], since: datetime | None
) -> Sequence[Any]:
    """Starts of ``environment``'s runs of ``purposes`` with their end's outcome and
    time (None when not ended): the unended ones, and with ``since`` also those
    that started or ended (other than interrupted) since then. Oldest first."""
    starts, ends = RunStartRow.__table__, RunRow.__table__
    query = (
        select(starts, ends.c.outcome, ends.c.finished_at)
        .select_from(starts.outerjoin(ends, ends.c.run_id == starts.c.run_id))
        .where(starts.c.environment == environment, starts.c.kind.in_([p.value for p in purposes]))
        .order_by(starts.c.seq)
    )
    if since is None:
        query = query.where(ends.c.id.is_(None))
    else:
        since_db = db_time(since)
        ended_since = and_(ends.c.outcome != Outcome.INTERRUPTED.value, ends.c.finished_at >= since_db)
        query = query.where(ends.c.id.is_(None) | ended_since | (starts.c.started_at >= since_db))
    return conn.execute(query).mappings().all()


def unfinished(conn: Connection, environment: str) -> Sequence[Any]:
    """Starts of ``environment`` with no end in ``runs``."""
    starts, ends = RunStartRow.__table__, RunRow.__table__
    ended = exists().where(ends.c.run_id == starts.c.run_id)
    query = select(starts).where(and_(starts.c.environment == environment, ~ended)).order_by(starts.c.seq)
    return conn.execute(query).all()


def newest_row(conn: Connection, model: type[SQLModel], environment: str) -> Any:
    """The newest row (by seq) of a chained table for ``environment`` (None if there is none)."""
    table = model.__table__
    query = select(table).where(table.c.environment == environment).order_by(table.c.seq.desc()).limit(1)
    return conn.execute(query).mappings().first()


def latest_status(conn: Connection, environment: str) -> Any:
    """The newest ``environment_status`` row of ``environment`` (None if there is none)."""
    return newest_row(conn, EnvironmentStatusRow, environment)


def status(conn: Connection, environment: str) -> EnvironmentStatus | None:
    """Where ``environment`` stands, from its newest status row."""
    row = latest_status(conn, environment)
    if row is None:
        return None
    data = {k: row[k] for k in EnvironmentStatus.model_fields if k in row}
    for key in ("recorded_at", "last_attempted_at", "last_applied_at"):
        data[key] = aware(data[key])
    return EnvironmentStatus(**data)


def pin(conn: Connection, environment: str) -> Pin | None:
    """The pin ``environment`` is held by now: its newest pin row, unless that is an unpin."""
    row = newest_row(conn, PinRow, environment)
    if row is None or row["action"] != "pin":
        return None
    return Pin(**{**{k: row[k] for k in Pin.model_fields if k in row}, "recorded_at": aware(row["recorded_at"])})


def suspension(conn: Connection, environment: str) -> Suspension | None:
    """The suspension in force for ``environment``: its newest row, when that suspends it."""
    row = newest_row(conn, SuspensionRow, environment)
    if row is None or row["action"] != "suspend":
        return None
    return Suspension(
        environment=environment, suspended_by=row["requested_by"], suspended_at=aware(row["recorded_at"]), reason=row["reason"]
    )


def drift_events(conn: Connection, environment: str | None, *, since: datetime | None, limit: int) -> list[DriftEvent]:
    """Drift events newest first."""
    table = DriftEventRow.__table__
    query = select(table).order_by(table.c.seq.desc()).limit(limit)
    if environment:
        query = query.where(table.c.environment == environment)
    if since:
        query = query.where(table.c.detected_at >= db_time(since))
    rows = conn.execute(query).mappings().all()
    return [
        DriftEvent(**{**{k: r[k] for k in DriftEvent.model_fields if k in r}, "detected_at": aware(r["detected_at"])})
        for r in rows
    ]


def head(conn: Connection) -> tuple[int, str]:
    """The chain's last seq and row_hash: the highest seq over all chained tables."""
    seq, row_hash = 0, audit.GENESIS
    for chained in CHAINED:
        t = chained.__table__
        last = conn.execute(select(t.c.seq, t.c.row_hash).order_by(t.c.seq.desc()).limit(1)).first()
        if last and last.seq > seq:
            seq, row_hash = last.seq, last.row_hash
    return seq, row_hash


def first_hash(conn: Connection) -> str:
    """The row_hash of the chain's first entry: the chain's identity ("" for an empty record)."""
    for model in CHAINED:
        t = model.__table__
        row = conn.execute(select(t.c.row_hash).where(t.c.seq == 1).order_by(t.c.id).limit(1)).first()
        if row:
            return str(row.row_hash)
    return ""


def pages(conn: Connection, model: type[SQLModel]) -> Iterator[audit.Entry]:
    """One chained table's rows as `audit.Entry`, in (seq, id) order, a page at a time."""
    table = model.__table__
    after = (0, 0)
    while True:
        query = select(table).where(tuple_(table.c.seq, table.c.id) > after).order_by(table.c.seq, table.c.id).limit(_PAGE)
        rows = conn.execute(query).mappings().all()
        if not rows:
            return
        changes = change_rows(conn, [r["id"] for r in rows]) if model is RunRow else {}
        retired = retired_values(conn, table.name, [r["id"] for r in rows])
        for row in rows:
            when = row.get("started_at") or row.get("detected_at") or row.get("recorded_at")
            yield audit.Entry(
                table=table.name,
                id=row["id"],
                seq=row["seq"],
                prev_hash=row["prev_hash"],
                row_hash=row["row_hash"],
                content={**retired.get(row["id"], {}), **row},
                changes=changes.get(row["id"], []) if model is RunRow else None,
                label=f"{row['environment']}, {when:%Y-%m-%d %H:%M:%S}" if when else row["environment"],
            )
        after = (rows[-1]["seq"], rows[-1]["id"])


def retired_values(conn: Connection, table_name: str, row_ids: list[int]) -> dict[int, dict[str, Any]]:
    """By row id: the values of columns since dropped that these rows were hashed with."""
    table = RetiredColumnsRow.__table__
    found: dict[int, dict[str, Any]] = {}
    for batch in (row_ids[i : i + 500] for i in range(0, len(row_ids), 500)):
        query = select(table.c.row_id, table.c.retired).where(table.c.table_name == table_name, table.c.row_id.in_(batch))
        for row in conn.execute(query):
            found[row.row_id] = dict(row.retired)
    return found


def change_rows(conn: Connection, run_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The rows of ``changes`` by run id, in order, as stored: what a run's changes_hash covers."""
    table = ChangeRow.__table__
    found: dict[int, list[dict[str, Any]]] = {}
    for batch in (run_ids[i : i + 500] for i in range(0, len(run_ids), 500)):
        query = select(table).where(table.c.run_pk.in_(batch)).order_by(table.c.run_pk, table.c.position, table.c.id)
        for row in conn.execute(query).mappings():
            found.setdefault(row["run_pk"], []).append(dict(row))
    return found


def changes_of(conn: Connection, run_ids: list[int]) -> dict[int, list[RecordedChange]]:
    """The recorded changes by run id, in order."""
    return {pk: [recorded_change(r) for r in rows] for pk, rows in change_rows(conn, run_ids).items()}
