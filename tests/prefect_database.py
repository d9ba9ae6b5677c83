"""A migrated Prefect server database, kept once per test run and copied for
the Prefect servers the tests start after it.

A Prefect server that starts on an empty SQLite database first runs every one
of Prefect's migrations: about 11 CPU-seconds and 10-15 s of its start-up here.
A server that finds its database already migrated starts in about a third of
that. So the first server of the run to start on an empty database has its
database copied, just after its start-up, as the run's template (`publish`),
and the servers that start later begin on a copy (`seed`): the test server
of a worker that reaches its first server test later, the real `prefect server
start`, the temporary server of a `driftgate sync` with no API URL. No server
waits for another: servers that start at the same time each migrate their
own. A copy is what a restarted server finds: Prefect checks its migrations
at start-up, as always.

Used by the fixtures in tests/conftest.py and by tests that start a server
themselves, with a directory all pytest-xdist workers of the run share.
`driftgate demo`, tested as a newcomer runs it, migrates its own.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from contextlib import closing
from pathlib import Path

TEMPLATE = "prefect-template.db"


def seed(shared: Path, database: Path) -> None:
    """``database`` made a copy of the run's template, if one was published in
    ``shared`` (if not, the server migrates an empty one)."""
    template = shared / TEMPLATE
    if template.exists():
        _copy(template, database)


def publish(database: Path, shared: Path) -> None:
    """``database``, which a server has just migrated and started on, kept as the
    run's template in ``shared`` unless another server's is there already (or the
    server keeps its database elsewhere: nothing to copy)."""
    if (shared / TEMPLATE).exists() or not database.exists():
        return
    fd, staging = tempfile.mkstemp(dir=shared, prefix=f"{TEMPLATE}.")
    os.close(fd)
    _copy(database, Path(staging))
    os.replace(staging, shared / TEMPLATE)  # whole or absent: two servers racing each leave a whole one


def _copy(source: Path, target: Path) -> None:
    """SQLite's own backup: a consistent copy, even of a database a server has open."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)
