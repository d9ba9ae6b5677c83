"""Suspensions: an environment suspended (no sync of it runs, drift checks go
on) or resumed, by whom, when and why. A link of the hash chain like every
other appended table; the newest row of an environment is its state.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suspensions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False, index=True),
        sa.Column("environment", sa.String, nullable=False, index=True),
        sa.Column("action", sa.String, nullable=False),
        sa.Column("reason", sa.String, nullable=False),
        sa.Column("requested_by", sa.String, nullable=False),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        sa.Column("prev_hash", sa.String, nullable=False),
        sa.Column("row_hash", sa.String, nullable=False),
    )
