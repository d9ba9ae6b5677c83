"""Pins, and where a run was aimed.

- ``environment_pins``: a chained table, one row per pin or unpin of an
  environment (who, why, which revision and commit); the newest row of an
  environment says whether it is pinned (`driftgate.store.Store.pin_of`).
- ``runs.origin``: the revision a run was asked for instead of its ref's head,
  the commit a rollback moved away from, the run a promotion came from (JSON).
  Rows written before have none: a NULL ``origin`` is left out of a row's
  hashed content (`driftgate.audit.ADDED_LATER`), so they verify as before.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

STR = sa.String


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("origin", sa.JSON))
    op.create_table(
        "environment_pins",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("environment", STR, nullable=False, index=True),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        sa.Column("action", STR, nullable=False),
        sa.Column("revision", STR, nullable=False),
        sa.Column("commit", STR, nullable=False),
        sa.Column("set_by", STR, nullable=False),
        sa.Column("reason", STR, nullable=False),
        sa.Column("run_id", STR, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False, index=True),
        sa.Column("prev_hash", STR, nullable=False),
        sa.Column("row_hash", STR, nullable=False),
    )
