"""The record's schema migrations (Alembic), run by `Store` when it opens a database.

`upgrade(engine)` brings a database to the newest revision in ``versions/``
inside one write transaction, so two processes opening a fresh database do not
both migrate it; a database already current is only read, without a lock. A record written by driftgate 0.1 (a ``runs`` table but no
``alembic_version``) is taken as revision 0001 and carried forward with its
rows. A database at a revision this code does not know was written by a newer
driftgate: opening it is refused with a clear error, and nothing is changed.

For developers: ``alembic -c driftgate/migrations/alembic.ini revision -m "..."``
adds a revision; write its upgrade by hand and keep `driftgate.store.tables`
equal to it (tests/test_store.py compares them).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from driftgate import recordlock
from driftgate.errors import PermanentError, TransientError
from driftgate.models import Stage
from driftgate.secrets import Masker

HERE = Path(__file__).resolve().parent
_LOCK = 0x64726675  # PostgreSQL advisory lock key for migrations


def config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    return cfg


def head() -> str:
    return ScriptDirectory.from_config(config()).get_current_head() or ""


def upgrade(engine: Engine) -> None:
    """Migrate ``engine``'s database to the newest revision.

    The usual case, a schema already current, costs one read of
    ``alembic_version`` and takes no lock: readers (history, show, status) must
    never wait behind a writer. Only a database that needs migrating takes the
    record's write lock (bounded, see `driftgate.recordlock`), and looks again
    under it, since another process may have migrated it meanwhile.
    """
    cfg = config()
    script = ScriptDirectory.from_config(cfg)
    newest = script.get_current_head()
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:  # unreadable, unreachable: one line, not a traceback
        raise TransientError(
            f"cannot open the record database {recordlock.describe(engine)}: {Masker()(str(exc.orig))}", stage=Stage.RECORD
        ) from None
    if current == newest:
        return
    _refuse_unknown(engine, script, current, newest)
    with recordlock.write_transaction(engine, "the schema migration", pg_lock=_LOCK) as conn:
        current = MigrationContext.configure(conn).get_current_revision()
        if current == newest:
            return
        _refuse_unknown(engine, script, current, newest)
        cfg.attributes["connection"] = conn
        if current is None and inspect(conn).has_table("runs"):
            command.stamp(cfg, "0001")  # the record of driftgate 0.1, made before migrations
        command.upgrade(cfg, "head")


def _refuse_unknown(engine: Engine, script: ScriptDirectory, current: str | None, newest: str | None) -> None:
    """A revision this code does not know was written by a newer driftgate: touch nothing."""
    if current is not None and current not in {s.revision for s in script.walk_revisions()}:
        raise PermanentError(
            f"the record database {Masker()(engine.url.render_as_string(hide_password=True))} is at schema "
            f"revision {current!r}, which this driftgate does not know (it knows up to {newest!r}): a newer "
            "driftgate wrote it. Upgrade driftgate to read or write this record; nothing was changed.",
            stage=Stage.RECORD,
        )
