"""store_meta: the pool a store belongs to

Revision ID: 4492d048c082
Revises: 9a421b6e190a
Create Date: 2026-12-01 14:29:28.825031
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "4492d048c082"
down_revision = "9a421b6e190a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=1024), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("store_meta")
