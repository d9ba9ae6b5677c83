"""Appending to the record: each write adds entries after the chain's head, over
a connection inside `Store`'s write transaction. There is no UPDATE or DELETE:
a change of state is a new row."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any
from uuid import uuid4

from sqlalchemy import insert
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

from driftgate import audit, pids
from driftgate.models import Outcome, RunPurpose, RunRecord, RunStart
from driftgate.store import queries
from driftgate.store.engine import db_time
from driftgate.store.records import DriftEvent, Pin, change_values, interrupted, origin_values
from driftgate.store.tables import ChangeRow, DriftEventRow, EnvironmentStatusRow, PinRow, RunRow, RunStartRow, SuspensionRow

# Judges a run started on another machine by its Prefect flow run id (None: a run without one).
EndedElsewhere = Callable[[str | None], bool]


def append(conn: Connection, model: type[SQLModel], values: dict[str, Any]) -> int:
    """Insert one chain entry after the current head; returns its id."""
    table = model.__table__
    seq, prev_hash = queries.head(conn)
    row = {**values, "seq": seq + 1, "prev_hash": prev_hash}
    missing = set(table.c.keys()) - set(row) - audit.NOT_CONTENT
    assert not missing, f"{table.name}: no value for {sorted(missing)}"  # the hash must cover every column
    row["row_hash"] = audit.row_hash(table.name, row)
    return conn.execute(insert(table).values(row)).inserted_primary_key[0]


def append_start(conn: Connection, start: RunStart) -> int:
    """A run's start, with where its process runs (to tell a crashed run from one still going)."""
    values = start.model_dump(mode="python", by_alias=True)
    values.update(kind=start.purpose.value, mode=start.mode.value, started_at=db_time(start.started_at))
    return append(conn, RunStartRow, {**values, "host": socket.gethostname(), "pid": os.getpid()})


def append_run(conn: Connection, run: RunRecord) -> int:
    """A run's end and its change rows; then the environment's status (a sync or
    rollback that got to a commit) or a drift event (a drift check that found drift)."""
    changes = [change_values(i, c) for i, c in enumerate(run.changes)]
    approval = run.approval
    required = approval is not None and approval.required
    exclude = {"changes", "approval", "hosts", "id", "seq", "row_hash", *RunRecord.ORIGIN}
    values = run.model_dump(mode="python", by_alias=True, exclude=exclude)
    values.update(
        origin=origin_values(run),
        run_id=run.run_id or uuid4().hex,
        kind=run.purpose.value,
        mode=run.mode.value,
        outcome=run.outcome.value,
        failed_stage=run.failed_stage.value if run.failed_stage else None,
        started_at=db_time(run.started_at),
        finished_at=db_time(run.finished_at),
        change_count=len(changes),
        risky_count=sum(c["risky"] for c in changes),
        # approval and hosts: their JSON, as the record has always held them (the row's hash covers it)
        approval=approval.model_dump(mode="json") if approval is not None else None,
        hosts=[h.model_dump(mode="json") for h in run.hosts],
        approver=approval.approver if required else None,
        approval_decision=approval.decision.value if required else None,
        changes_hash=audit.changes_hash(changes),
    )
    pk = append(conn, RunRow, values)
    if changes:  # one executemany: 10,000 changes in well under a second
        conn.execute(insert(ChangeRow.__table__), [{**c, "run_pk": pk} for c in changes])
    if run.purpose.moves_environment and run.commit and run.outcome not in (Outcome.INTERRUPTED, Outcome.REFUSED):
        applied = run.commit if run.outcome in (Outcome.APPLIED, Outcome.IN_SYNC) else None
        append_status(conn, run.environment, values["run_id"], run.commit, run.outcome.value, applied)
    if run.purpose == RunPurpose.DRIFT and run.outcome == Outcome.DRIFT:
        append_drift(
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


def append_drift(conn: Connection, drift: DriftEvent) -> int:
    values = drift.model_dump(mode="python", exclude={"id"})
    values.update(detected_at=db_time(drift.detected_at), change_count=len(drift.changes))
    return append(conn, DriftEventRow, values)


def append_status(
    conn: Connection,
    environment: str,
    run_id: str,
    attempted: str | None,
    outcome: str,
    applied: str | None,
) -> int:
    """The environment's status moved on; what is not given is carried over from its newest row."""
    now = db_time(datetime.now(timezone.utc))
    previous = dict(queries.latest_status(conn, environment) or {})
    values = {
        "environment": environment,
        "recorded_at": now,
        "run_id": run_id,
        "last_attempted_revision": previous.get("last_attempted_revision", ""),
        "last_attempted_at": previous.get("last_attempted_at"),
        "last_attempted_outcome": previous.get("last_attempted_outcome", ""),
        "last_applied_revision": previous.get("last_applied_revision", ""),
        "last_applied_at": previous.get("last_applied_at"),
    }
    if attempted is not None:
        values.update(last_attempted_revision=attempted, last_attempted_at=now, last_attempted_outcome=outcome)
    if applied is not None:
        values.update(last_applied_revision=applied, last_applied_at=now)
    return append(conn, EnvironmentStatusRow, values)


def append_pin(conn: Connection, pin: Pin) -> int:
    """The environment is pinned to ``pin.commit`` from now on."""
    values = pin.model_dump(mode="python")
    values.update(action="pin", recorded_at=db_time(pin.recorded_at))
    return append(conn, PinRow, values)


def append_unpin(conn: Connection, environment: str, *, by: str, reason: str) -> int:
    """The environment follows its ref's head again."""
    now = db_time(datetime.now(timezone.utc))
    values = {"environment": environment, "recorded_at": now, "action": "unpin", "revision": "", "commit": "",
              "set_by": by, "reason": reason, "run_id": ""}  # fmt: skip
    return append(conn, PinRow, values)


def append_suspension(conn: Connection, environment: str, action: str, reason: str, by: str) -> int:
    """An environment suspended or resumed (``action``: suspend or resume)."""
    values = {
        "environment": environment,
        "action": action,
        "reason": reason,
        "requested_by": by,
        "recorded_at": db_time(datetime.now(timezone.utc)),
    }
    return append(conn, SuspensionRow, values)


def mark_interrupted(conn: Connection, noticed_by: RunStart, *, ended_elsewhere: EndedElsewhere | None = None) -> list[int]:
    """Append as ``interrupted`` the unended starts of the environment whose process is gone.

    A process on this machine is asked directly. One on another machine (a
    worker, a pod) cannot be, and a drift check or a plan there may start
    while it syncs: it is gone only when ``ended_elsewhere(flow_run_id)`` says
    its Prefect run has ended; without that judge it is left alone."""
    marked = []
    for row in queries.unfinished(conn, noticed_by.environment):
        if row.run_id == noticed_by.run_id:
            continue
        if row.host == socket.gethostname():
            gone = not still_running(row.host, row.pid)
        else:
            gone = ended_elsewhere is not None and ended_elsewhere(row.flow_run_id)
        if gone:
            marked.append(append_run(conn, interrupted(row, noticed_by=noticed_by)))
    return marked


def still_running(host: str, pid: int, *, elsewhere: bool = False) -> bool:
    """Whether a run's process may still be working. Only a process on this
    machine can be checked; one elsewhere counts as ``elsewhere``."""
    if host != socket.gethostname():
        return elsewhere
    return pids.alive(pid)
