"""trust boundary: tenant run_as, claim mig, workload agent and pid proof

Revision ID: 9a421b6e190a
Revises: d59dad35865c
Create Date: 2026-12-01 14:16:35.463631
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "9a421b6e190a"
down_revision = "d59dad35865c"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns only: plain ADD COLUMN on SQLite and PostgreSQL, no table copy.
    op.add_column("tenants", sa.Column("run_as", sa.String(length=32), nullable=True))
    op.add_column("claims", sa.Column("mig", sa.String(length=32), nullable=True))
    op.add_column("workloads", sa.Column("agent", sa.String(length=128), nullable=True))
    op.add_column("workloads", sa.Column("run_as", sa.String(length=32), nullable=True))
    op.add_column("workloads", sa.Column("proof_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workloads") as batch_op:
        batch_op.drop_column("proof_hash")
        batch_op.drop_column("run_as")
        batch_op.drop_column("agent")
    with op.batch_alter_table("claims") as batch_op:
        batch_op.drop_column("mig")
    with op.batch_alter_table("tenants") as batch_op:
        batch_op.drop_column("run_as")
