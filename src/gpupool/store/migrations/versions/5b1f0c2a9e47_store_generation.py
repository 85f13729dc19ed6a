"""store generation counter (in-memory pool state stays coherent across processes)

Revision ID: 5b1f0c2a9e47
Revises: 4bde1f04b3d5
Create Date: 2026-11-27 14:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "5b1f0c2a9e47"
down_revision = "4bde1f04b3d5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "store_generation",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": 1, "value": 0}])


def downgrade() -> None:
    op.drop_table("store_generation")
