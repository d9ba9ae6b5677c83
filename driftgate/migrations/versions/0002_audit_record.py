"""The audit record: starts, runs and their change rows, drift events and
environment status, every row in one hash chain.

The 0.1 ``runs`` rows are carried over in their order (nothing is lost): each
becomes a run with its changes as rows and takes its place in the chain.

Revision ID: 0002
Revises: 0001
"""

from uuid import uuid4

import sqlalchemy as sa
from alembic import op

from driftgate import audit

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STR = sa.String  # unbounded VARCHAR on PostgreSQL, TEXT affinity on SQLite


def _chain_columns() -> list[sa.Column]:
    return [
        sa.Column("seq", sa.Integer, nullable=False, index=True),
        sa.Column("prev_hash", STR, nullable=False),
        sa.Column("row_hash", STR, nullable=False),
    ]


def _run_identity_columns() -> list[sa.Column]:
    """Columns a run's start and its end share."""
    return [
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", STR, nullable=False, index=True),
        sa.Column("environment", STR, nullable=False, index=True),
        sa.Column("kind", STR, nullable=False),
        sa.Column("mode", STR, nullable=False),
        sa.Column("trigger", STR, nullable=False),
        sa.Column("requested_by", STR, nullable=False),
    ]


def upgrade() -> None:
    for name in ("environment", "outcome", "started_at", "commit"):
        op.drop_index(f"ix_runs_{name}", table_name="runs")
    op.rename_table("runs", "runs_v1")

    runs = op.create_table(
        "runs",
        *_run_identity_columns(),
        sa.Column("outcome", STR, nullable=False, index=True),
        sa.Column("started_at", sa.DateTime, nullable=False, index=True),
        sa.Column("finished_at", sa.DateTime, nullable=False),
        sa.Column("repo", STR, nullable=False),
        sa.Column("ref", STR, nullable=False),
        sa.Column("commit", STR, nullable=False, index=True),
        sa.Column("commit_author", STR, nullable=False),
        sa.Column("signed_by", STR),
        sa.Column("plan_hash", STR, nullable=False),
        sa.Column("change_count", sa.Integer, nullable=False),
        sa.Column("risky_count", sa.Integer, nullable=False),
        sa.Column("approver", STR, index=True),
        sa.Column("approval_decision", STR),
        sa.Column("approval", sa.JSON),
        sa.Column("hosts", sa.JSON, nullable=False),
        sa.Column("failed_stage", STR),
        sa.Column("reason", STR, nullable=False),
        sa.Column("flow_run_id", STR, index=True),
        sa.Column("flow_run_url", STR),
        sa.Column("version", STR, nullable=False),
        sa.Column("changes_hash", STR, nullable=False),
        *_chain_columns(),
    )
    changes = op.create_table(
        "changes",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_pk", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("action", STR, nullable=False),
        sa.Column("target", STR, nullable=False),
        sa.Column("name", STR, nullable=False),
        sa.Column("module", STR, nullable=False),
        sa.Column("kind", STR, nullable=False),
        sa.Column("namespace", STR, nullable=False),
        sa.Column("api_version", STR, nullable=False),
        sa.Column("risky", sa.Boolean, nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("diff", STR, nullable=False),
        sa.Column("result", STR, nullable=False),
        sa.Column("health", STR, nullable=False),
        sa.Column("extra", sa.JSON, nullable=False),
    )
    op.create_table(
        "run_starts",
        *_run_identity_columns(),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("flow_run_id", STR),
        sa.Column("flow_run_url", STR),
        sa.Column("version", STR, nullable=False),
        sa.Column("host", STR, nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        *_chain_columns(),
    )
    op.create_table(
        "drift_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("environment", STR, nullable=False, index=True),
        sa.Column("detected_at", sa.DateTime, nullable=False, index=True),
        sa.Column("run_id", STR, nullable=False),
        sa.Column("commit", STR, nullable=False),
        sa.Column("plan_hash", STR, nullable=False),
        sa.Column("change_count", sa.Integer, nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("action", STR, nullable=False),
        *_chain_columns(),
    )
    op.create_table(
        "environment_status",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("environment", STR, nullable=False, index=True),
        sa.Column("recorded_at", sa.DateTime, nullable=False),
        sa.Column("run_id", STR, nullable=False),
        sa.Column("last_attempted_revision", STR, nullable=False),
        sa.Column("last_attempted_at", sa.DateTime),
        sa.Column("last_attempted_outcome", STR, nullable=False),
        sa.Column("last_applied_revision", STR, nullable=False),
        sa.Column("last_applied_at", sa.DateTime),
        sa.Column("inventory", sa.JSON, nullable=False),
        *_chain_columns(),
    )
    _carry_over_v1(runs, changes)
    op.drop_table("runs_v1")


def _carry_over_v1(runs: sa.Table, changes: sa.Table) -> None:
    """Each 0.1 run, in order, as a chained run with change rows."""
    bind = op.get_bind()
    old = sa.Table("runs_v1", sa.MetaData(), autoload_with=bind)
    prev_hash = audit.GENESIS
    for seq, row in enumerate(bind.execute(sa.select(old).order_by(old.c.id)).mappings(), start=1):
        approval = row["approval"] or {}
        required = bool(approval.get("required"))
        change_rows = [
            {
                "position": i,
                "action": str(c.get("action", "")),
                "target": str(c.get("target", "")),
                "name": str(c.get("name", "")),
                "module": str(c.get("module") or ""),
                "kind": str(c.get("kind") or ""),
                "namespace": str(c.get("namespace") or ""),
                "api_version": str(c.get("api_version") or ""),
                "risky": bool(c.get("risky")),
                "rules": [str(r) for r in c.get("rules") or []],
                "diff": str(c.get("diff") or ""),
                "result": "",
                "health": "",
                "extra": {},
            }
            for i, c in enumerate(row["changes"] or [])
        ]
        values = {
            "run_id": uuid4().hex,
            "environment": row["environment"],
            "kind": "plan" if row["mode"] == "plan" else "sync",
            "mode": row["mode"],
            "trigger": row["trigger"],
            "requested_by": row["requested_by"],
            "outcome": row["outcome"],
            "started_at": _naive(row["started_at"]),
            "finished_at": _naive(row["finished_at"]),
            "repo": row["repo"],
            "ref": row["ref"],
            "commit": row["commit"],
            "commit_author": "",
            "signed_by": None,
            "plan_hash": row["plan_hash"],
            "change_count": len(change_rows),
            "risky_count": sum(c["risky"] for c in change_rows),
            "approver": approval.get("approver") if required else None,
            "approval_decision": approval.get("decision") if required else None,
            "approval": row["approval"],
            "hosts": row["hosts"] or [],
            "failed_stage": row["failed_stage"],
            "reason": row["reason"],
            "flow_run_id": row["flow_run_id"],
            "flow_run_url": None,
            "version": "0.1",
            "changes_hash": audit.changes_hash(change_rows),
            "seq": seq,
            "prev_hash": prev_hash,
        }
        values["row_hash"] = prev_hash = audit.row_hash("runs", values)
        pk = bind.execute(sa.insert(runs).values(values)).inserted_primary_key[0]
        if change_rows:
            bind.execute(sa.insert(changes), [{**c, "run_pk": pk} for c in change_rows])


def _naive(value):  # type: ignore[no-untyped-def]
    """Datetimes as the store keeps them: naive UTC."""
    from datetime import timezone

    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo else value


def downgrade() -> None:
    raise NotImplementedError("the record is never downgraded")
