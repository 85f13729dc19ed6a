"""claim idempotency key

Revision ID: 4bde1f04b3d5
Revises: 3ca72706e8d2
Create Date: 2026-12-01 14:21:05.962378

A claim remembers the client's Idempotency-Key (unique per tenant) and a hash of the request, so a
retried POST /v1/claims returns the claim it made instead of a second one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "4bde1f04b3d5"
down_revision = "3ca72706e8d2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.add_column(sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("request_hash", sa.String(length=64), nullable=True))
        batch_op.create_index("ux_claims_tenant_idempotency_key", ["tenant", "idempotency_key"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("claims", schema=None) as batch_op:
        batch_op.drop_index("ux_claims_tenant_idempotency_key")
        batch_op.drop_column("request_hash")
        batch_op.drop_column("idempotency_key")
