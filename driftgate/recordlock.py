"""The record's write lock: wait for it with backoff, name who holds it, give up in one line.

One writer at a time extends the record's hash chain: on SQLite the writer
takes the database's write lock up front (``BEGIN IMMEDIATE``), on PostgreSQL
a transaction-scoped advisory lock. Readers never take either (SQLite in WAL
mode lets them read beside a writer), so only writers ever wait here.

`write_transaction` is called by `driftgate.store.Store` for every append and
by `driftgate.migrations.upgrade` when the schema must move on. It tries the
lock, and while another process holds it, logs once who that is (the process
holding SQLite's WAL write lock, from ``/proc/locks`` on Linux; the PostgreSQL
backend holding the advisory lock) and retries with backoff until
``DRIFTGATE_RECORD_LOCK_TIMEOUT`` seconds (default 60) have passed. Then it
raises one `TransientError` line, and nothing was written.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from driftgate.errors import TransientError
from driftgate.models import Stage
from driftgate.secrets import Masker

TIMEOUT_ENV_VAR = "DRIFTGATE_RECORD_LOCK_TIMEOUT"
DEFAULT_TIMEOUT_S = 60.0
READ_BUSY_TIMEOUT_S = 30  # SQLite's own wait, for the rare moments a WAL reader must wait (recovery)

log = logging.getLogger("driftgate.record")


def budget() -> float:
    """How long a writer waits for the lock, in seconds."""
    raw = os.environ.get(TIMEOUT_ENV_VAR, "")
    try:
        return max(float(raw), 0.0) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        raise TransientError(f"{TIMEOUT_ENV_VAR}={raw!r} is not a number of seconds", stage=Stage.RECORD) from None


@contextmanager
def write_transaction(engine: Engine, what: str, *, pg_lock: int) -> Iterator[Connection]:
    """A transaction holding the record's write lock, for writing ``what``
    (e.g. "the record of 'prod'"). Raises `TransientError` naming the holder
    when the lock stays taken longer than `budget`; the body's own database
    errors become one `TransientError` line too."""
    conn = _acquire(engine, what, pg_lock)
    try:
        with _already_begun(conn):
            yield conn
    except OperationalError as exc:  # the database went away mid-write: worth a retry
        raise TransientError(f"cannot write {what}: {describe(engine)}: {Masker()(str(exc.orig))}", stage=Stage.RECORD) from None
    finally:
        conn.close()


@contextmanager
def _already_begun(conn: Connection) -> Iterator[None]:
    """Commit the transaction `_acquire` began, or roll it back on an error."""
    transaction = conn.get_transaction()
    assert transaction is not None
    try:
        yield
    except BaseException:
        transaction.rollback()
        raise
    transaction.commit()


def _acquire(engine: Engine, what: str, pg_lock: int) -> Connection:
    """A connection inside a begun write transaction that holds the lock."""
    limit = budget()
    deadline = time.monotonic() + limit
    pause, told = 0.05, False
    while True:
        remaining = deadline - time.monotonic()
        conn: Connection | None = None
        try:
            conn = engine.connect()
            if _try_lock(conn, pg_lock, wait_s=max(min(remaining, 1.0), 0.0)):
                if told:
                    log.warning("the record database is free again: writing %s", what)
                return conn
            conn.close()
        except OperationalError as exc:
            if conn is not None:
                conn.close()
            if not _is_busy(exc):
                raise TransientError(f"cannot write {what}: {describe(engine)}: {Masker()(str(exc.orig))}", stage=Stage.RECORD) from None
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        holder = holder_of(engine, pg_lock)
        if time.monotonic() >= deadline:
            raise TransientError(
                f"cannot write {what}: the record database {describe(engine)} stayed locked by {holder} for {limit:g} s; "
                f"nothing was written. Retry when it is free, or raise {TIMEOUT_ENV_VAR}",
                stage=Stage.RECORD,
            )
        if not told:
            log.warning("the record database %s is locked by %s; waiting up to %g s to write %s", describe(engine), holder, limit, what)
            told = True
        time.sleep(min(pause, max(deadline - time.monotonic(), 0)))
        pause = min(pause * 2, 1.0)


def _try_lock(conn: Connection, pg_lock: int, *, wait_s: float) -> bool:
    """Begin the write transaction; whether it holds the lock. SQLite waits up
    to ``wait_s`` by itself (its busy handler backs off), then says busy."""
    if conn.dialect.name == "sqlite":
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute(f"PRAGMA busy_timeout = {int(wait_s * 1000)}")
        conn.execution_options(driftgate_write=True)  # the engine's begin hook: BEGIN IMMEDIATE
        try:
            conn.begin()
        finally:
            raw.execute(f"PRAGMA busy_timeout = {READ_BUSY_TIMEOUT_S * 1000}")
        return True
    transaction = conn.begin()
    if conn.dialect.name == "postgresql":
        if not conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": pg_lock}).scalar():
            transaction.rollback()
            time.sleep(min(wait_s, 0.2))  # PostgreSQL has no busy handler: pace the tries here
            return False
    return True


def _is_busy(exc: OperationalError) -> bool:
    message = str(exc.orig).lower()
    return "locked" in message or "busy" in message


def describe(engine: Engine) -> str:
    """The database for people: a SQLite file's path, a URL without its password."""
    if engine.dialect.name == "sqlite" and engine.url.database:
        return engine.url.database
    return Masker()(engine.url.render_as_string(hide_password=True))


# ---------------------------------------------------------------- who holds it


def holder_of(engine: Engine, pg_lock: int) -> str:
    """Who holds the record's write lock, as well as it can be known."""
    try:
        if engine.dialect.name == "sqlite" and engine.url.database:
            return _sqlite_holder(Path(engine.url.database))
        if engine.dialect.name == "postgresql":
            return _postgres_holder(engine, pg_lock)
    except (OSError, OperationalError):
        pass
    return "another writer"


def _sqlite_holder(database: Path) -> str:
    """The process holding SQLite's WAL write lock: a POSIX lock on byte 120 of
    the ``-shm`` file, which Linux lists in /proc/locks with its pid."""
    shm = os.stat(f"{database}-shm")
    inode = f"{os.major(shm.st_dev):02x}:{os.minor(shm.st_dev):02x}:{shm.st_ino}"
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        # "1: POSIX  ADVISORY  WRITE 9987 fe:00:2146962 120 120"
        if len(fields) >= 8 and fields[1] == "POSIX" and fields[3] == "WRITE" and fields[5] == inode and fields[6] == "120":
            return f"pid {fields[4]}{_command_of(fields[4])}"
    return "another process (its pid cannot be read here)"


def _command_of(pid: str) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    command = " ".join(a.decode(errors="replace") for a in argv[:3] if a)
    return f" ({command[:80]})" if command else ""


def _postgres_holder(engine: Engine, pg_lock: int) -> str:
    query = text(
        "SELECT a.pid, a.application_name, a.client_addr, a.usename FROM pg_locks l "
        "JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = :low AND l.classid = :high"
    )
    with engine.connect() as conn:
        row = conn.execute(query, {"low": pg_lock & 0xFFFFFFFF, "high": pg_lock >> 32}).first()
    if row is None:
        return "another writer"
    where = f" from {row.client_addr}" if row.client_addr else ""
    app = f" {row.application_name!r}" if row.application_name else ""
    return f"PostgreSQL backend {row.pid} ({row.usename}{app}{where})"
