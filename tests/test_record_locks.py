"""The record never blocks its readers, and a writer that cannot get the lock
says so in one line: real SQLite files with a real second connection holding
the write lock (``BEGIN IMMEDIATE``), the real CLI in its own process, and a
real PostgreSQL session holding the chain's advisory lock."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from driftgate.cli import app
from driftgate.errors import TransientError
from driftgate.store import Store
from driftgate.store.engine import open_engine
from tests.conftest import run_cli
from tests.postgres import database_url, postgres_server  # noqa: F401  (fixtures)
from tests.test_store import a_run


@pytest.fixture
def sqlite_record(tmp_path: Path) -> tuple[str, Path]:
    """A record with one run, its schema current, on a SQLite file."""
    path = tmp_path / "record.db"
    url = f"sqlite:///{path}"
    Store(url).record(a_run("prod"))
    return url, path


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another writer, not driftgate (an sqlite3 shell, a backup job): a plain
    connection that takes the write lock and keeps it."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


@pytest.fixture
def held(sqlite_record: tuple[str, Path]) -> Iterator[tuple[str, Path]]:
    holder = _hold_write_lock(sqlite_record[1])
    yield sqlite_record
    holder.rollback()
    holder.close()


@pytest.mark.e2e  # a real CLI process
def test_history_show_and_verify_answer_while_another_connection_holds_the_write_lock(held: tuple[str, Path]) -> None:
    url, _ = held
    open_engine.cache_clear()  # open the database afresh, as every CLI process does (it used to migrate under BEGIN IMMEDIATE)
    for args, expected in ((["history"], "prod"), (["show", "1"], "run #1"), (["audit", "verify"], "the record is intact")):
        started = time.monotonic()
        result = CliRunner().invoke(app, args, env={"DRIFTGATE_DATABASE_URL": url})
        assert result.exit_code == 0 and expected in result.stdout, (args, result.output)
        assert time.monotonic() - started < 10, args  # it used to wait 30 s, then fail with a traceback
    # And a real CLI process (on main: 30 s, then sqlite3.OperationalError).
    history = run_cli("history", "--output", "json", env={"DRIFTGATE_DATABASE_URL": url}, timeout=25)
    assert history.returncode == 0, history.stderr
    assert [r["environment"] for r in json.loads(history.stdout)] == ["prod"]


def test_a_writer_blocked_beyond_its_budget_fails_with_one_line(held: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    url, path = held
    monkeypatch.setenv("DRIFTGATE_RECORD_LOCK_TIMEOUT", "1.5")
    store = Store(url)
    started = time.monotonic()
    with pytest.raises(TransientError) as caught:
        store.record(a_run("prod", run_id="blocked"))
    waited = time.monotonic() - started
    assert 1.4 < waited < 5, waited
    message = str(caught.value)
    assert "\n" not in message
    assert f"cannot write the record of 'prod': the record database {path} stayed locked by pid {os.getpid()}" in message
    assert "for 1.5 s; nothing was written" in message
    assert len(Store(url).history(limit=None)) == 1  # and the reader still answers


@pytest.mark.e2e  # a real CLI process
def test_the_cli_says_one_line_when_the_record_stays_locked(world, held: tuple[str, Path]) -> None:  # type: ignore[no-untyped-def]
    """`plan` appends its run to the record: it says it is waiting and for whom,
    then gives up in one line with exit 1, no traceback."""
    url, path = held
    result = run_cli(
        "plan", "demo", "--config", str(world.config),
        env={"DRIFTGATE_DATABASE_URL": url, "DRIFTGATE_RECORD_LOCK_TIMEOUT": "2.5"}, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 2, result.stderr
    assert f"the record database {path} is locked by pid {os.getpid()}" in lines[0] and "waiting up to 2.5 s" in lines[0]
    assert lines[1].startswith("error: cannot write the record of 'demo'") and "nothing was written" in lines[1]


def test_a_writer_waits_for_a_short_lock_and_then_writes(sqlite_record: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A lock released within the budget: the writer waits for it and appends."""
    import threading

    url, path = sqlite_record
    monkeypatch.setenv("DRIFTGATE_RECORD_LOCK_TIMEOUT", "20")
    holder = _hold_write_lock(path)
    release = threading.Timer(0.8, holder.rollback)
    release.start()
    try:
        Store(url).record(a_run("prod", run_id="after-the-wait"))
    finally:
        release.join()
        holder.close()
    assert [r.run_id for r in Store(url).history(limit=None)][0] == "after-the-wait"


def test_a_postgresql_writer_blocked_beyond_its_budget_fails_with_one_line(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("the SQLite case is above")
    monkeypatch.setenv("DRIFTGATE_RECORD_LOCK_TIMEOUT", "1")
    store = Store(database_url)
    store.record(a_run("prod"))
    other = sa.create_engine(database_url)
    with other.connect() as conn, conn.begin():
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": 0x64726674})  # the chain's lock
        pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar()
        with pytest.raises(TransientError) as caught:
            store.record(a_run("prod", run_id="blocked"))
        assert "\n" not in str(caught.value)
        assert f"stayed locked by PostgreSQL backend {pid}" in str(caught.value) and "nothing was written" in str(caught.value)
        assert len(store.history(limit=None)) == 1  # readers are not blocked
    other.dispose()
    open_engine.cache_clear()


@pytest.mark.usefixtures("prefect_api")
def test_a_sync_that_cannot_write_its_start_applies_nothing_and_says_why(world, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The start row comes first: a record locked beyond the writer's budget
    (through the task's retries) ends the run before fetch, with the reason."""
    from driftgate.flows.reconcile import reconcile

    path = Path(Store().url.removeprefix("sqlite:///"))
    monkeypatch.setenv("DRIFTGATE_RECORD_LOCK_TIMEOUT", "0.3")
    holder = _hold_write_lock(path)
    try:
        state = reconcile(environment="demo", config=str(world.config), return_state=True)
    finally:
        holder.rollback()
        holder.close()
    assert state.is_failed()
    with pytest.raises(TransientError, match=rf"cannot write the start of a run of 'demo': .* stayed locked by pid {os.getpid()}"):
        state.result()
    assert not world.config_line.exists()  # nothing was applied
    assert Store().history("demo") == []  # and nothing half-written
