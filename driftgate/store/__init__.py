"""record: the append-only, hash-chained audit log; SQLite by default, PostgreSQL for teams.

`Store` opens the database named by ``DRIFTGATE_DATABASE_URL`` (default a
SQLite file under ``$DRIFTGATE_HOME``, in WAL mode), brings its schema up to
date with the Alembic migrations in `driftgate.migrations`, and then only
ever appends:

- ``run_starts``: one row when a run starts (`start_run`); a start that never
  got its end is marked ``interrupted`` by the next start of that environment;
- ``runs`` and ``changes``: a run's end with one row per change, in one
  transaction (`record`);
- ``drift_events`` and ``environment_status`` (`record_drift`, `record_status`,
  and from `record` itself): what drift was seen, and per environment the last
  attempted and last applied revision; ``environment_pins`` (`pin`, `unpin`):
  an environment held at one commit;
- ``suspensions`` (`suspend`, `resume`): who suspended an environment's syncs
  or resumed them, when and why. (The inventory of applied objects that
  prune works from is kept in the cluster, by `driftgate.kube`.)

Every appended row is an entry of one hash chain per database (see
`driftgate.audit`); the code has no UPDATE or DELETE. After each write, a
signed checkpoint of the chain's head goes outside the database when
``DRIFTGATE_CHECKPOINTS`` names a place (`driftgate.checkpoints`). Reads take
no lock; writers wait for one another within a bounded time
(`driftgate.recordlock`). Called by the record tasks, the CLI (plan, history,
show, status, audit) and the scheduling work.

The package, by job: `tables` (the schema), `engine` (opening a database,
migrating it, timestamps), `records` (what the store returns, and models to
rows and back), `appends` (writing) and `queries` (reading); `Store` here
holds the transactions and the checkpoints around them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from heapq import merge as merge_sorted  # named apart from session merge, which the no-UPDATE test looks for
from subprocess import SubprocessError

from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel

from driftgate import audit, checkpoints, home, recordlock
from driftgate.errors import DriftgateError, PermanentError, TransientError
from driftgate.models import RunPurpose, RunRecord, RunStart, Stage
from driftgate.secrets import Masker
from driftgate.store import appends, queries
from driftgate.store.engine import aware, open_engine
from driftgate.store.records import DriftEvent, EnvironmentStatus, OpenRun, Pin, StoredRun, Suspension, open_run
from driftgate.store.tables import CHAINED, RunRow

__all__ = [
    "CHAINED", "AlreadySuspended", "DriftEvent", "EnvironmentStatus", "NotSuspended", "OpenRun", "Pin", "SQLModel",
    "Store", "StoredRun", "Suspension",
]  # fmt: skip


class AlreadySuspended(PermanentError):
    """`Store.suspend` of an environment that is suspended already."""


class NotSuspended(PermanentError):
    """`Store.resume` of an environment that is not suspended."""

MOVING = tuple(p for p in RunPurpose if p.moves_environment)  # sync, rollback, promote
_CHAIN_LOCK = 0x64726674  # PostgreSQL advisory lock key: one chain writer at a time

log = logging.getLogger("driftgate.record")


class Store:
    def __init__(self, url: str | None = None) -> None:
        self.url = url or home.database_url()
        self.engine = open_engine(self.url)

    # ------------------------------------------------------------ appending

    def start_run(self, start: RunStart, *, ended_elsewhere: appends.EndedElsewhere | None = None) -> list[int]:
        """Append the start of a run. Earlier starts of the same environment that
        never got an end, and whose process is gone, are first recorded as
        ``interrupted``; returns the record ids of those. ``ended_elsewhere``
        judges runs started on another machine (`appends.mark_interrupted`)."""
        with self._writing(f"the start of a run of {start.environment!r}") as conn:
            marked = appends.mark_interrupted(conn, start, ended_elsewhere=ended_elsewhere)
            appends.append_start(conn, start)
        return marked

    def mark_interrupted(self, noticed_by: RunStart, *, ended_elsewhere: appends.EndedElsewhere | None = None) -> list[int]:
        """What `start_run` does first, alone: for a run that has started and is
        waiting (for its environment's sync slot), so a holder that dies while it
        waits is noticed. Returns the record ids of the runs marked."""
        with self._writing(f"interrupted runs of {noticed_by.environment!r}") as conn:
            return appends.mark_interrupted(conn, noticed_by, ended_elsewhere=ended_elsewhere)

    def record(self, run: RunRecord) -> int:
        """Append a run's end with its changes (one transaction); returns its id.

        A sync or rollback also moves the environment's status on; a drift
        check that found changes appends a drift event.
        """
        with self._writing(f"the record of {run.environment!r}") as conn:
            return appends.append_run(conn, run)

    def record_drift(self, drift: DriftEvent) -> int:
        with self._writing(f"a drift event of {drift.environment!r}") as conn:
            return appends.append_drift(conn, drift)

    def record_status(
        self,
        environment: str,
        *,
        run_id: str = "",
        attempted: str | None = None,
        outcome: str = "",
        applied: str | None = None,
    ) -> int:
        """Move an environment's status on; what is not given is carried over."""
        with self._writing(f"the status of {environment!r}") as conn:
            return appends.append_status(conn, environment, run_id, attempted, outcome, applied)

    def pin(self, pin: Pin) -> int:
        """Hold ``pin.environment`` at ``pin.commit`` (its syncs and drift checks) until `unpin`."""
        with self._writing(f"the pin of {pin.environment!r}") as conn:
            return appends.append_pin(conn, pin)

    def unpin(self, environment: str, *, by: str, reason: str = "") -> int:
        """Let ``environment`` follow its ref's head again."""
        with self._writing(f"the unpin of {environment!r}") as conn:
            return appends.append_unpin(conn, environment, by=by, reason=reason)

    def suspend(self, environment: str, *, reason: str, by: str) -> Suspension:
        """Suspend ``environment``: no sync of it runs until it is resumed (drift checks go on).
        Raises `AlreadySuspended` when it is suspended already."""
        with self._writing(f"the suspension of {environment!r}") as conn:
            current = queries.suspension(conn, environment)
            if current is not None:
                raise AlreadySuspended(f"environment {environment!r} is already {current.describe()}; resume it first")
            appends.append_suspension(conn, environment, "suspend", reason, by)
            suspended = queries.suspension(conn, environment)
        assert suspended is not None
        return suspended

    def resume(self, environment: str, *, reason: str, by: str) -> Suspension:
        """End the suspension of ``environment``; returns the suspension that ended.
        Raises `NotSuspended` when it is not suspended."""
        with self._writing(f"the resumption of {environment!r}") as conn:
            current = queries.suspension(conn, environment)
            if current is None:
                raise NotSuspended(f"environment {environment!r} is not suspended: nothing to resume")
            appends.append_suspension(conn, environment, "resume", reason, by)
        return current

    # ------------------------------------------------------------ reading

    def pin_of(self, environment: str) -> Pin | None:
        """The pin ``environment`` is held by now (None: it follows its ref)."""
        with self._reading() as conn:
            return queries.pin(conn, environment)

    def suspension(self, environment: str) -> Suspension | None:
        """The suspension in force for ``environment``; None when it may sync."""
        with self._reading() as conn:
            return queries.suspension(conn, environment)

    def history(
        self,
        environment: str | None = None,
        *,
        limit: int | None = 50,
        since: datetime | None = None,
        until: datetime | None = None,
        commit: str | None = None,
        approver: str | None = None,
    ) -> list[StoredRun]:
        """Runs newest first; ``commit`` matches a prefix of the SHA."""
        with self._reading() as conn:
            return queries.runs(
                conn, environment=environment, limit=limit, since=since, until=until, commit=commit, approver=approver
            )

    def iter_runs(
        self, environment: str | None = None, *, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[StoredRun]:
        """Runs oldest first, streamed a page at a time (`driftgate audit export`),
        in one read transaction: on SQLite one consistent snapshot."""
        with self._reading() as conn:
            yield from queries.runs_oldest_first(conn, environment=environment, since=since, until=until)

    def get(self, ref: str) -> StoredRun | None:
        """One run by record id, run id (or a prefix of 8+ characters) or Prefect flow-run id."""
        runs = RunRow.__table__
        if ref.isdigit():
            where = runs.c.id == int(ref)
        elif len(ref) >= 8:
            where = (runs.c.flow_run_id == ref) | runs.c.run_id.startswith(ref, autoescape=True)
        else:
            return None
        with self._reading() as conn:
            return queries.one_run(conn, where)

    def for_flow_run(self, flow_run_id: str) -> StoredRun | None:
        """The run recorded by one Prefect flow run, if any."""
        with self._reading() as conn:
            return queries.one_run(conn, RunRow.__table__.c.flow_run_id == flow_run_id)

    def runs_in_progress(
        self,
        environment: str,
        *,
        purposes: Sequence[RunPurpose] = MOVING,
        since: datetime | None = None,
    ) -> list[OpenRun]:
        """Runs of ``purposes`` that may be working now: started and not ended
        (on this machine: their process is alive; elsewhere that cannot be told,
        so they count). With ``since``, also those that started or ended (other
        than interrupted) since then. Oldest first. Used to say whom a waiting
        sync waits for, and by the drift check to stay clear of syncs."""
        with self.engine.connect() as conn:
            rows = queries.starts_with_ends(conn, environment, purposes=purposes, since=since)
        found = []
        for row in rows:
            if row["outcome"] is None and not appends.still_running(row["host"], row["pid"], elsewhere=True):
                if since is None or aware(row["started_at"]) < since:
                    continue  # died (the next start records it as interrupted)
            found.append(open_run(row))
        return found

    def status(self, environment: str) -> EnvironmentStatus | None:
        """The newest status row of an environment (None if it never synced)."""
        with self._reading() as conn:
            return queries.status(conn, environment)

    def last_applied_revision(self, environment: str) -> str:
        """The commit the environment was last brought to ('' if never): where a plan's commit list starts."""
        found = self.status(environment)
        return (found.last_applied_revision or "") if found else ""

    def drift_events(self, environment: str | None = None, *, since: datetime | None = None, limit: int = 100) -> list[DriftEvent]:
        """Drift events newest first."""
        with self._reading() as conn:
            return queries.drift_events(conn, environment, since=since, limit=limit)

    def chain_entries(self) -> list[audit.Entry]:
        """Every chained row, in chain order (for tests and small records; verify streams `iter_chain`)."""
        return list(self.iter_chain())

    def iter_chain(self) -> Iterator[audit.Entry]:
        """Every chained row in (seq, table, id) order, a page at a time from each
        table: `audit.verify` and the bundle export walk a record of any length
        with flat memory. One read transaction: on SQLite one consistent snapshot."""
        with self._reading() as conn:
            yield from merge_sorted(*(queries.pages(conn, model) for model in CHAINED), key=lambda e: (e.seq, e.table, e.id))

    def head(self) -> tuple[str, int, str]:
        """The chain's identity (the row_hash of its first entry), its last seq and
        that entry's row_hash; ("", 0, GENESIS) for an empty record. For checkpoints."""
        with self._reading() as conn:
            seq, head = queries.head(conn)
            first = queries.first_hash(conn)
        return first, seq, head

    # ------------------------------------------------------------ transactions

    @contextmanager
    def _writing(self, what: str) -> Iterator[Connection]:
        """One write transaction holding the chain (SQLite ``BEGIN IMMEDIATE``,
        PostgreSQL an advisory lock), so two writers cannot both extend the same
        head. Waits for another writer within a bounded time (`driftgate.recordlock`)."""
        with recordlock.write_transaction(self.engine, what, pg_lock=_CHAIN_LOCK) as conn:
            yield conn
        self._anchor()

    def _anchor(self) -> None:
        """After a write commits: a signed checkpoint of the head, outside the
        database, when ``DRIFTGATE_CHECKPOINTS`` names a place. The run is
        recorded already, so a checkpoint that cannot be written is logged, not
        raised: the next one covers this head too, and `audit verify` shows
        the rows no checkpoint covers yet."""
        try:
            location = checkpoints.location_from_env()
            if location is None:
                return
            signer = checkpoints.Signer.from_env(create=True)
            assert signer is not None
            checkpoints.anchor(location, signer, self.head, database=recordlock.describe(self.engine))
        except (DriftgateError, OSError, SubprocessError) as exc:
            log.error("the record was written, but its checkpoint was not: %s", Masker()(str(exc)))

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A read: no write lock, never waits for a writer (WAL on SQLite); a
        database that cannot be read is one line, not a traceback."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise TransientError(
                f"cannot read the record database {recordlock.describe(self.engine)}: {Masker()(str(exc.orig))}",
                stage=Stage.RECORD,
            ) from None
