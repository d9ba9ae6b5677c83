"""The environment status no longer holds a prune inventory: the inventory of
applied objects lives in the cluster (the ConfigMap ``driftgate-inventory-ENV``,
see `driftgate.kube`), and nothing ever filled the record's copy.

The column goes, but the rows written before keep verifying: each row's hash
covers its ``inventory``, so its value moves to ``retired_columns`` (one row per
status row: table, row id, and the retired column's value), and the store puts
it back into the row's content when the chain is walked (`driftgate.store.queries`).
A retired value edited or removed breaks its row's hash like any other column.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    retired = op.create_table(
        "retired_columns",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("table_name", sa.String, nullable=False),
        sa.Column("row_id", sa.Integer, nullable=False),
        sa.Column("retired", sa.JSON, nullable=False),
        sa.UniqueConstraint("table_name", "row_id", name="uq_retired_columns_row"),
    )
    bind = op.get_bind()
    status = sa.Table("environment_status", sa.MetaData(), autoload_with=bind)
    rows = bind.execute(sa.select(status.c.id, status.c.inventory).order_by(status.c.id)).all()
    if rows:
        bind.execute(
            sa.insert(retired),
            [{"table_name": "environment_status", "row_id": r.id, "retired": {"inventory": r.inventory}} for r in rows],
        )
    with op.batch_alter_table("environment_status") as batch:
        batch.drop_column("inventory")
