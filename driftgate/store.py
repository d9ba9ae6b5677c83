"""record: every run, written with SQLModel; SQLite by default, PostgreSQL for teams.

`Store` opens (and creates) the database named by ``DRIFTGATE_DATABASE_URL``
(default a SQLite file under ``$DRIFTGATE_HOME``), appends `RunRecord`s and
reads them back newest first. The code has no update or delete path: the
record only grows. Called by the record task, the CLI's plan and history.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, Column, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Field, Session, SQLModel, col, create_engine, select

from driftgate import home
from driftgate.errors import TransientError
from driftgate.secrets import Masker
from driftgate.models import Mode, Outcome, RunRecord, Stage


class Run(SQLModel, table=True):
    __tablename__ = "runs"

    id: int | None = Field(default=None, primary_key=True)
    environment: str = Field(index=True)
    mode: str
    trigger: str
    outcome: str = Field(index=True)
    started_at: datetime = Field(index=True)
    finished_at: datetime
    duration_s: float
    requested_by: str = ""
    repo: str = ""
    ref: str = ""
    commit: str = Field(default="", index=True)
    plan_hash: str = ""
    changes: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    approval: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    hosts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    flow_run_id: str | None = None
    failed_stage: str | None = None
    reason: str = ""


class StoredRun(RunRecord):
    """A `RunRecord` as read back, with its row id."""

    id: int


class Store:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or home.database_url()
        self.engine = _engine(self.url)

    def record(self, run: RunRecord) -> int:
        """Append one run; returns its id."""
        row = Run(**run.model_dump(mode="python"), duration_s=run.duration_s)
        try:
            with Session(self.engine) as session:
                session.add(row)
                session.commit()
                session.refresh(row)
        except OperationalError as exc:  # locked or unreachable database: worth a retry
            raise TransientError(
                f"cannot write the record of {run.environment!r} to the database: {Masker()(str(exc.orig))}",
                stage=Stage.RECORD,
            ) from None
        assert row.id is not None
        return row.id

    def history(self, environment: str | None = None, *, limit: int = 50) -> list[StoredRun]:
        """Runs newest first, optionally for one environment."""
        query = select(Run).order_by(col(Run.started_at).desc(), col(Run.id).desc()).limit(limit)
        if environment:
            query = query.where(Run.environment == environment)
        with Session(self.engine) as session:
            return [_to_record(row) for row in session.exec(query)]


    def for_flow_run(self, flow_run_id: str) -> StoredRun | None:
        """The run recorded by one Prefect flow run, if any."""
        query = select(Run).where(Run.flow_run_id == flow_run_id).order_by(col(Run.id).desc()).limit(1)
        with Session(self.engine) as session:
            row = session.exec(query).first()
            return _to_record(row) if row else None


def _to_record(row: Run) -> StoredRun:
    data = row.model_dump(exclude={"duration_s"})
    data["mode"] = Mode(data["mode"])
    data["outcome"] = Outcome(data["outcome"])
    data["failed_stage"] = Stage(data["failed_stage"]) if data["failed_stage"] else None
    return StoredRun(**data)


@lru_cache(maxsize=8)
def _engine(url: str) -> Engine:
    sqlite = url.startswith("sqlite")
    engine = create_engine(url, connect_args={"timeout": 30} if sqlite else {})
    if sqlite:
        # WAL lets a server, workers and the CLI read while one of them writes.
        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    SQLModel.metadata.create_all(engine)
    return engine
