"""The record's schema migrations (Alembic), run by `Store` when it opens a database.

`upgrade(engine)` brings a database to the newest revision in ``versions/``
inside one write transaction, so two processes opening a fresh database do not
both migrate it. A record written by driftgate 0.1 (a ``runs`` table but no
``alembic_version``) is taken as revision 0001 and carried forward with its
rows. A database at a revision this code does not know was written by a newer
driftgate: opening it is refused with a clear error, and nothing is changed.

For developers: ``alembic -c driftgate/migrations/alembic.ini revision -m "..."``
adds a revision; write its upgrade by hand and keep `driftgate.store`'s tables
equal to it (tests/test_store.py compares them).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from driftgate.errors import PermanentError
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
    """Migrate ``engine``'s database to the newest revision (a no-op when it is there)."""
    cfg = config()
    script = ScriptDirectory.from_config(cfg)
    newest = script.get_current_head()
    with engine.connect() as conn:
        conn.execution_options(driftgate_write=True)  # SQLite: BEGIN IMMEDIATE
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
            current = MigrationContext.configure(conn).get_current_revision()
            if current == newest:
                return
            if current is not None and current not in {s.revision for s in script.walk_revisions()}:
                raise PermanentError(
                    f"the record database {Masker()(engine.url.render_as_string(hide_password=True))} is at schema "
                    f"revision {current!r}, which this driftgate does not know (it knows up to {newest!r}): a newer "
                    "driftgate wrote it. Upgrade driftgate to read or write this record; nothing was changed.",
                    stage=Stage.RECORD,
                )
            cfg.attributes["connection"] = conn
            if current is None and inspect(conn).has_table("runs"):
                command.stamp(cfg, "0001")  # the record of driftgate 0.1, made before migrations
            command.upgrade(cfg, "head")
