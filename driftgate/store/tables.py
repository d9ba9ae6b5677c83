"""The record's tables, as SQLModel classes: what the store appends and reads.

They must match the newest migration in `driftgate.migrations` (a test compares
them with Alembic). Every table but ``changes`` is a link of the one hash chain
(`CHAINED`): each row carries ``seq``, ``prev_hash`` and ``row_hash``
(`driftgate.audit`); a run's change rows are covered by its ``changes_hash``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Integer, UniqueConstraint
from sqlmodel import Field, SQLModel

from driftgate.models import RecordedChange


def _time(*, index: bool = False, nullable: bool = False) -> Column[Any]:
    """A timestamp column holding naive UTC (see `driftgate.store.engine.db_time`)."""
    return Column(DateTime, nullable=nullable, index=index)


class _RunIdentity(SQLModel):
    """Columns a run's start and its end share."""

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(index=True)
    run_id: str = Field(index=True)
    environment: str = Field(index=True)
    kind: str  # the run's purpose (driftgate.models.RunPurpose): sync, drift, rollback, plan
    mode: str  # its mode (driftgate.models.RunMode): plan or sync
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
    # Where the run was aimed, when not at its ref's head (RunRecord.ORIGIN); NULL otherwise
    # and in rows written before the column existed (left out of the hash while NULL).
    origin: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))


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
    kind: str  # Kubernetes: the object's kind
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
    prev_hash: str
    row_hash: str


class PinRow(SQLModel, table=True):
    """A pin or an unpin of an environment; its newest row says whether it is pinned.
    While pinned, its syncs and drift checks use the pinned commit, not its ref's head."""

    __tablename__ = "environment_pins"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(index=True)
    environment: str = Field(index=True)
    recorded_at: datetime = Field(sa_column=_time())
    action: str  # pin | unpin
    revision: str  # as asked (a tag, a branch, a SHA); '' for an unpin
    commit: str  # what it resolved to; '' for an unpin
    set_by: str
    reason: str
    run_id: str  # the run that pinned it ('' for an unpin by hand)
    prev_hash: str
    row_hash: str


class SuspensionRow(SQLModel, table=True):
    """An environment suspended (no sync of it runs) or resumed, by whom and why;
    the newest row of an environment says whether it is suspended now."""

    __tablename__ = "suspensions"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(index=True)
    environment: str = Field(index=True)
    action: str  # suspend | resume
    reason: str
    requested_by: str
    recorded_at: datetime = Field(sa_column=_time())
    prev_hash: str
    row_hash: str


class RetiredColumnsRow(SQLModel, table=True):
    """Values of columns a migration dropped, for the rows written before: their
    hashes cover those values, so walking the chain puts them back into the
    row's content (`driftgate.store.queries.pages`). Nothing new is written here."""

    __tablename__ = "retired_columns"
    __table_args__ = (UniqueConstraint("table_name", "row_id", name="uq_retired_columns_row"),)

    id: int | None = Field(default=None, primary_key=True)
    table_name: str
    row_id: int
    retired: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


CHAINED: tuple[type[SQLModel], ...] = (RunRow, RunStartRow, DriftEventRow, EnvironmentStatusRow, PinRow, SuspensionRow)

# The change columns of their own; a change's other fields go to ``extra``.
CHANGE_COLUMNS = RecordedChange.COLUMNS
