"""The record's store on a real SQLite file and a real PostgreSQL: round trips,
queries, one transaction per run, interrupted runs, environment status and
drift events, concurrent writers, WAL, and the Alembic migrations."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from driftgate import audit
from driftgate.errors import PermanentError
from driftgate.models import Action, Outcome, RecordedChange, RunMode, RunPurpose, RunRecord, RunStart, Stage
from driftgate.store import DriftEvent, SQLModel, Store
from driftgate.store.engine import open_engine
from tests.postgres import database_url, postgres_server  # noqa: F401  (fixtures)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parent.parent


def a_run(environment: str = "prod", *, at: datetime = T0, changes: int = 2, **fields: Any) -> RunRecord:
    values: dict[str, Any] = {
        "environment": environment,
        "mode": RunMode.SYNC,
        "purpose": RunPurpose.SYNC,
        "trigger": "schedule",
        "outcome": Outcome.APPLIED,
        "started_at": at,
        "finished_at": at + timedelta(seconds=3),
        "requested_by": "bob",
        "repo": "https://git.example.com/deploy.git",
        "ref": "main",
        "commit": "c0ffee" + "0" * 34,
        "commit_author": "Carol <carol@example.com>",
        "signed_by": "Release Key <release@example.com>",
        "plan_hash": "ab" * 32,
        "changes": [
            {"action": "update", "target": f"web{i}", "name": "config line", "module": "lineinfile", "kind": "",
             "namespace": "", "api_version": "", "risky": i == 0, "rules": ["delete"] if i == 0 else [],
             "diff": f"-a\n+b{i}", "result": "changed", "health": ""}
            for i in range(changes)
        ],  # fmt: skip
        "approval": {"required": True, "decision": "approve", "approver": "alice", "reason": "reviewed",
                     "plan_hash": "ab" * 32, "decided_at": (at + timedelta(seconds=1)).isoformat(), "timed_out": False},  # fmt: skip
        "hosts": [{"host": "web0", "ok": 1, "changed": 1, "failed": 0, "unreachable": 0, "skipped": 0, "tasks": []}],
        "flow_run_id": "9f1c2f4e-0000-4000-8000-000000000001",
        "flow_run_url": "http://127.0.0.1:4200/runs/flow-run/9f1c2f4e-0000-4000-8000-000000000001",
        "version": "0.1.0",
        "run_id": f"run-{environment}-{at.timestamp():.0f}",
    }
    return RunRecord(**{**values, **fields})


def test_a_run_round_trips_with_every_field(database_url: str) -> None:
    store = Store(database_url)
    run = a_run()
    record_id = store.record(run)
    [stored] = store.history()
    assert stored.id == record_id and stored.seq == 1 and len(stored.row_hash) == 64
    assert stored.model_dump(exclude={"id", "seq", "row_hash"}) == run.model_dump()
    assert stored.started_at.tzinfo is not None and stored.duration_s == 3
    assert store.get(str(record_id)) == stored == store.get(run.run_id) == store.for_flow_run(run.flow_run_id)
    assert store.get(run.run_id[:10]) == stored and store.get("nope") is None and store.get("999") is None


def test_history_is_newest_first_and_filters(database_url: str) -> None:
    store = Store(database_url)
    store.record(a_run("prod", at=T0))
    store.record(a_run("staging", at=T0 + timedelta(hours=1), commit="beef" + "1" * 36, approval=None))
    store.record(a_run("prod", at=T0 + timedelta(days=1), approval={"required": True, "decision": "reject", "approver": "dave"}))
    envs = lambda runs: [(r.environment, r.started_at) for r in runs]  # noqa: E731
    assert envs(store.history()) == [("prod", T0 + timedelta(days=1)), ("staging", T0 + timedelta(hours=1)), ("prod", T0)]
    assert envs(store.history("prod", limit=1)) == [("prod", T0 + timedelta(days=1))]
    assert envs(store.history(since=T0 + timedelta(minutes=30))) == envs(store.history())[:2]
    assert envs(store.history(until=T0 + timedelta(minutes=30))) == [("prod", T0)]
    assert envs(store.history(commit="beef")) == [("staging", T0 + timedelta(hours=1))]
    assert envs(store.history(commit="c0ffee_")) == []  # a prefix, not a LIKE pattern
    assert envs(store.history(approver="alice")) == [("prod", T0)]
    assert envs(store.history(approver="dave")) == [("prod", T0 + timedelta(days=1))]


def test_a_run_and_its_changes_are_written_in_one_transaction(database_url: str) -> None:
    store = Store(database_url)
    store.record(a_run(at=T0))
    # The database itself fails the change rows (as a full disk would), after the run row went in.
    with store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("CREATE TRIGGER full_disk BEFORE INSERT ON changes BEGIN SELECT RAISE(ABORT, 'disk full'); END")
        else:
            conn.exec_driver_sql("CREATE FUNCTION full_disk() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$ LANGUAGE plpgsql")
            conn.exec_driver_sql("CREATE TRIGGER full_disk BEFORE INSERT ON changes FOR EACH ROW EXECUTE FUNCTION full_disk()")
    with pytest.raises(sa.exc.DBAPIError, match="disk full"):
        store.record(a_run(at=T0 + timedelta(hours=1)))
    assert [r.started_at for r in store.history()] == [T0]  # no run without its changes
    assert store.record(a_run(at=T0 + timedelta(hours=2), changes=0))  # a run with no changes still goes in
    assert audit.verify(store.chain_entries()).ok


_CRASH = """
import os, signal, sys
from driftgate.models import RunMode, RunPurpose, RunStart
from driftgate.store import Store
from datetime import datetime, timezone
Store(sys.argv[1]).start_run(RunStart(run_id="crashed-run-0001", environment="prod", purpose=RunPurpose.SYNC, mode=RunMode.SYNC,
    trigger="schedule", requested_by="cron", started_at=datetime.now(timezone.utc), flow_run_id="f-1", version="0.1.0"))
os.kill(os.getpid(), signal.SIGKILL)  # dies mid-run: no end is ever written
"""


def _start(run_id: str, environment: str = "prod") -> RunStart:
    return RunStart(
        run_id=run_id, environment=environment, purpose=RunPurpose.SYNC, mode=RunMode.SYNC, trigger="cli", started_at=datetime.now(timezone.utc)
    )


def test_a_crashed_run_is_marked_interrupted_by_the_next_start(database_url: str) -> None:
    crashed = subprocess.run([sys.executable, "-c", _CRASH, database_url], capture_output=True, text=True, timeout=60)
    assert crashed.returncode == -9, crashed.stderr
    store = Store(database_url)
    assert store.history() == []  # not yet noticed
    assert store.start_run(_start("other-env-run-0001", "staging")) == []  # another environment's start does not judge it
    [marked] = store.start_run(_start("still-running-0001"))
    [interrupted] = store.history()
    assert interrupted.id == marked and interrupted.outcome == Outcome.INTERRUPTED
    assert interrupted.run_id == "crashed-run-0001" and interrupted.requested_by == "cron" and interrupted.flow_run_id == "f-1"
    assert "never finished" in interrupted.reason and "noticed when run still-runnin" in interrupted.reason
    # Marked once; and the run of this (live) process is not taken for a crashed one.
    assert store.start_run(_start("next-run-00000002")) == []
    store.record(a_run(run_id="still-running-0001"))  # the live run ends normally
    assert {r.run_id: r.outcome for r in store.history()} == {
        "crashed-run-0001": Outcome.INTERRUPTED,
        "still-running-0001": Outcome.APPLIED,
    }  # next-run-00000002 is still going
    assert audit.verify(store.chain_entries()).ok


def test_environment_status_and_drift_events(database_url: str) -> None:
    store = Store(database_url)
    assert store.status("prod") is None
    store.record(a_run(commit="a" * 40, at=T0))
    store.record(a_run(commit="b" * 40, at=T0 + timedelta(hours=1), outcome=Outcome.FAILED, failed_stage=Stage.APPLY))
    status = store.status("prod")
    assert status is not None
    assert (status.last_attempted_revision, status.last_attempted_outcome) == ("b" * 40, "failed")
    assert status.last_applied_revision == "a" * 40  # carried over
    assert status.last_applied_at is not None and status.last_applied_at <= status.last_attempted_at

    store.record(a_run(purpose=RunPurpose.DRIFT, mode=RunMode.PLAN, outcome=Outcome.DRIFT, at=T0 + timedelta(hours=2), approval=None))
    store.record(a_run(purpose=RunPurpose.PLAN, mode=RunMode.PLAN, outcome=Outcome.DRIFT, at=T0 + timedelta(hours=3), approval=None))
    store.record_drift(DriftEvent(environment="prod", detected_at=T0 + timedelta(hours=4), action="healed", commit="a" * 40))
    events = store.drift_events("prod")
    assert [(e.action, len(e.changes)) for e in events] == [("healed", 0), ("reported", 2)]  # a person's plan is no drift event
    assert events[1].changes[0] == {"action": "update", "target": "web0", "name": "config line", "kind": "", "namespace": ""}
    assert store.drift_events("prod", since=T0 + timedelta(hours=3))[0].action == "healed"
    assert store.status("prod").last_attempted_revision == "b" * 40  # checks do not move the status

    store.record_status("prod", run_id="noted")
    assert store.status("prod").run_id == "noted" and store.status("prod").last_applied_revision == "a" * 40
    assert audit.verify(store.chain_entries()).ok


def test_concurrent_writers_extend_one_chain(database_url: str) -> None:
    store = Store(database_url)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(8):
                other = Store(database_url)
                other.start_run(_start(f"w{n}-{i}-run", f"env{n}"))
                other.record(a_run(f"env{n}", at=T0 + timedelta(minutes=i), run_id=f"w{n}-{i}-run"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entries = store.chain_entries()
    assert sorted(e.seq for e in entries) == list(range(1, len(entries) + 1))
    assert audit.verify(entries).ok and len(store.history(limit=None)) == 32


def test_sqlite_is_in_wal_mode(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'r.db'}")
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_the_tables_match_the_migrations(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = Store(database_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_a_record_from_driftgate_0_1_is_carried_forward(database_url: str) -> None:
    """A 0.1 database (one runs table, no alembic_version) keeps every run, now chained."""
    from alembic import command

    from driftgate.migrations import config

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        cfg = config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")  # the 0.1 schema ...
        conn.exec_driver_sql("DROP TABLE alembic_version")  # ... made before driftgate had migrations
        runs = sa.Table("runs", sa.MetaData(), autoload_with=conn)  # written as driftgate 0.1 wrote it
        for i, (env, outcome) in enumerate([("prod", "applied"), ("prod", "rejected"), ("dev", "drift")]):
            approval = {"required": True, "decision": "reject", "approver": "erin", "reason": "no"}
            conn.execute(
                runs.insert().values(
                    environment=env, mode="plan" if outcome == "drift" else "sync", trigger="cli", outcome=outcome,
                    started_at=datetime(2024, 1, 1 + i, 9, 0), finished_at=datetime(2024, 1, 1 + i, 9, 1), duration_s=60.0,
                    requested_by="bob", repo="r", ref="main", commit=f"{i}" * 40, plan_hash="p",
                    changes=[{"action": "update", "target": "h", "name": "t", "module": "copy", "risky": True, "diff": "+x"}],
                    approval=approval if outcome == "rejected" else None, hosts=[], flow_run_id=None, failed_stage=None, reason="",
                )
            )  # fmt: skip
    engine.dispose()
    store = Store(database_url)
    runs = store.history()
    assert [(r.environment, r.outcome.value, r.purpose.value) for r in runs] == [("dev", "drift", "plan"), ("prod", "rejected", "sync"), ("prod", "applied", "sync")]
    assert runs[1].approval.approver == "erin" and store.history(approver="erin") == [runs[1]]
    assert runs[2].changes[0] == RecordedChange(action=Action.UPDATE, target="h", name="t", module="copy", risky=True, diff="+x")
    assert audit.verify(store.chain_entries()).ok
    store.record(a_run())  # and the chain goes on from there
    assert audit.verify(store.chain_entries()).entries == 4 + 1  # 3 runs, a run and its status


def test_status_rows_written_with_an_inventory_still_verify_without_it(database_url: str) -> None:
    """Revision 0003 drops the record's prune inventory (the cluster keeps it): rows
    hashed with it keep verifying, and a retired value tampered with is caught."""
    from alembic import command

    from driftgate.migrations import config

    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        cfg = config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        status = sa.Table("environment_status", sa.MetaData(), autoload_with=conn)
        prev_hash = audit.GENESIS
        for seq, inventory in enumerate([[{"kind": "ConfigMap", "namespace": "web", "name": "cfg"}], []], start=1):
            values = {
                "environment": "prod", "recorded_at": datetime(2024, 1, seq, 9, 0), "run_id": f"run-{seq}",
                "last_attempted_revision": "a" * 40, "last_attempted_at": datetime(2024, 1, seq, 9, 0),
                "last_attempted_outcome": "applied", "last_applied_revision": "a" * 40,
                "last_applied_at": datetime(2024, 1, seq, 9, 0), "inventory": inventory, "seq": seq, "prev_hash": prev_hash,
            }  # fmt: skip
            values["row_hash"] = prev_hash = audit.row_hash("environment_status", values)  # as the 0002 store wrote it
            conn.execute(status.insert().values(values))
    engine.dispose()
    store = Store(database_url)  # migrates to the newest revision
    with store.engine.connect() as conn:
        assert "inventory" not in {c["name"] for c in sa.inspect(conn).get_columns("environment_status")}
    assert store.status("prod").run_id == "run-2" and audit.verify(store.chain_entries()).ok
    store.record(a_run(commit="b" * 40, at=T0))  # the chain goes on; new status rows have no inventory
    assert audit.verify(store.chain_entries()).entries == 2 + 2

    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM retired_columns WHERE row_id = (SELECT min(row_id) FROM retired_columns)"))
    verdict = audit.verify(store.chain_entries())
    assert (verdict.kind, verdict.table, verdict.id) == ("altered", "environment_status", 1)


def test_a_database_newer_than_the_code_is_refused(database_url: str) -> None:
    Store(database_url).record(a_run())
    with Store(database_url).engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0099'")
    open_engine.cache_clear()  # a new process, as far as the store can tell
    with pytest.raises(PermanentError, match=r"schema revision '0099', which this driftgate does not know .*newer driftgate"):
        Store(database_url)
    with sa.create_engine(database_url).connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM runs").scalar() == 1  # untouched


def test_the_code_has_no_update_or_delete_path() -> None:
    sources = [*(ROOT / "driftgate" / "store").glob("*.py"), *(ROOT / "driftgate" / n for n in ("audit.py", "runlog.py", "migrations/__init__.py"))]
    assert len(sources) >= 8  # the store's modules are all looked at
    for path in sources:
        source, name = path.read_text(), path.name
        assert not re.search(r"import[^\n]*\b(update|delete)\b|UPDATE\s+\w+\s+SET|DELETE\s+FROM|\.delete\(|\.merge\(", source), name


def test_a_run_on_another_machine_is_interrupted_only_when_its_prefect_run_ended(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With workers on separate machines, a drift check may start on one while a sync of
    the same environment runs on another: the sync's process cannot be asked from here,
    so only its Prefect run's end (the judge) makes it interrupted."""
    store = Store(f"sqlite:///{tmp_path / 'record.db'}")
    with monkeypatch.context() as elsewhere:
        elsewhere.setattr(socket, "gethostname", lambda: "machine-a")
        store.start_run(_start("sync-on-machine-a"))  # alive on machine A
    assert store.start_run(_start("drift-here-0001")) == []  # no judge: left alone
    asked: list[str | None] = []
    alive = lambda flow_run_id: asked.append(flow_run_id) or False  # noqa: E731
    assert store.start_run(_start("drift-here-0002"), ended_elsewhere=alive) == [] and asked
    assert store.history("prod") == []  # nothing ended
    [marked] = store.start_run(_start("sync-here-0003"), ended_elsewhere=lambda flow_run_id: True)
    assert store.get(str(marked)).outcome == Outcome.INTERRUPTED and store.get(str(marked)).run_id == "sync-on-machine-a"
