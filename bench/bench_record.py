"""How fast the record writes and verifies: one run with 10,000 change rows.

    .venv/bin/python bench/bench_record.py [--changes N] [--url DATABASE_URL]

Writes into a fresh SQLite file (WAL) unless --url names another database,
then prints the time to record the run (one transaction: the run row, its
change rows, the environment status), to read it back, and to verify the
whole chain. Not a test: numbers go into the README's record section.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from driftgate import audit
from driftgate.models import Outcome, RunMode, RunPurpose, RunRecord
from driftgate.store import Store


def a_run(changes: int) -> RunRecord:
    now = datetime.now(timezone.utc)
    return RunRecord(
        environment="bench",
        mode=RunMode.SYNC,
        purpose=RunPurpose.SYNC,
        trigger="bench",
        outcome=Outcome.APPLIED,
        started_at=now,
        finished_at=now + timedelta(seconds=1),
        commit="b" * 40,
        plan_hash="p" * 64,
        changes=[
            {
                "action": "update",
                "target": f"Deployment/web/app-{i}",
                "name": f"app-{i}",
                "kind": "Deployment",
                "namespace": "web",
                "api_version": "apps/v1",
                "risky": i % 10 == 0,
                "rules": ["replicas-to-zero"] if i % 10 == 0 else [],
                "diff": f"-  replicas: 2\n+  replicas: {i % 5 + 3}\n",
                "result": "changed",
                "health": "ok",
            }
            for i in range(changes)
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10_000)
    parser.add_argument("--url", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    url = args.url or f"sqlite:///{Path(tempfile.mkdtemp(prefix='driftgate-bench-')) / 'record.db'}"

    store = Store(url)  # opening runs the migrations: not part of the timings
    run = a_run(args.changes)
    store.record(a_run(10))  # warm up connections and statement caches

    started = time.perf_counter()
    record_id = store.record(run)
    write = time.perf_counter() - started

    started = time.perf_counter()
    stored = store.get(str(record_id))
    read = time.perf_counter() - started
    assert stored is not None and len(stored.changes) == args.changes

    started = time.perf_counter()
    verdict = audit.verify(store.iter_chain())
    check = time.perf_counter() - started
    assert verdict.ok, verdict.problem

    backend = url.split(":", 1)[0]
    print(f"{backend}: record 1 run with {args.changes:,} changes: {write:.3f} s")
    print(f"{backend}: read it back (show):              {read:.3f} s")
    print(f"{backend}: verify the chain ({verdict.entries} entries):     {check:.3f} s")


if __name__ == "__main__":
    main()
