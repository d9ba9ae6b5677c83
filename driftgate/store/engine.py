"""Opening the record's database: the engine, SQLite's set-up, the migrations,
and the one form timestamps take in it. Called by `driftgate.store.Store`."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import create_engine

from driftgate import recordlock

# The newest revision in driftgate/migrations/versions/, known without importing
# Alembic (0.2 CPU-s here, with Mako): a record already there opens with one read.
# tests/test_cli_imports.py keeps it equal to the migrations' head.
SCHEMA_HEAD = "0005"


@lru_cache(maxsize=8)
def open_engine(url: str) -> Engine:
    """The engine of ``url``, its schema brought up to date; one per URL and process."""
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

    if not schema_current(engine):
        from driftgate.migrations import upgrade  # Alembic, only for a record to migrate (or an error to explain)

        upgrade(engine)
    return engine


def schema_current(engine: Engine) -> bool:
    """Whether the database is at `SCHEMA_HEAD`, read without Alembic and without a lock.
    Any doubt (no ``alembic_version`` yet, an unreachable database) is a no: the
    migrations then decide, migrate or explain."""
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == SCHEMA_HEAD
    except SQLAlchemyError:
        return False


def db_time(value: datetime) -> datetime:
    """Naive UTC: the one form both SQLite and PostgreSQL give back unchanged
    (the hash chain depends on reading back exactly what was written)."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def aware(value: datetime | None) -> datetime | None:
    """A timestamp read back (naive UTC) as an aware one."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value
