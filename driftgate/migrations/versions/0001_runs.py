"""The record of driftgate 0.1: one ``runs`` table, changes as JSON.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("environment", sa.String, nullable=False, index=True),
        sa.Column("mode", sa.String, nullable=False),
        sa.Column("trigger", sa.String, nullable=False),
        sa.Column("outcome", sa.String, nullable=False, index=True),
        sa.Column("started_at", sa.DateTime, nullable=False, index=True),
        sa.Column("finished_at", sa.DateTime, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("requested_by", sa.String, nullable=False),
        sa.Column("repo", sa.String, nullable=False),
        sa.Column("ref", sa.String, nullable=False),
        sa.Column("commit", sa.String, nullable=False, index=True),
        sa.Column("plan_hash", sa.String, nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("approval", sa.JSON),
        sa.Column("hosts", sa.JSON, nullable=False),
        sa.Column("flow_run_id", sa.String),
        sa.Column("failed_stage", sa.String),
        sa.Column("reason", sa.String, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("the record is never downgraded")
