"""Durable tenant quotas, each change one transaction with its audit event."""

from __future__ import annotations

import time

from sqlalchemy import delete, insert, select

from gpupool.model.quota import Quota
from gpupool.store import schema
from gpupool.store.store import Store


class QuotaRecords:
    """Quotas in the pool's database (a tenant without a row has no quota)."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def set_quota(self, quota: Quota, actor: str) -> Quota:
        """Replace a tenant's quota (an empty quota removes it) and log `tenant.quota`."""
        with self.engine.begin() as conn:
            conn.execute(delete(schema.quotas).where(schema.quotas.c.tenant == quota.tenant))
            if not quota.is_empty:
                conn.execute(
                    insert(schema.quotas),
                    {
                        "tenant": quota.tenant,
                        "guarantee_gpus": quota.guarantee_gpus,
                        "limit_gpus": quota.limit_gpus,
                        "guarantee_memory_bytes": quota.guarantee_memory_bytes,
                        "limit_memory_bytes": quota.limit_memory_bytes,
                        "updated_at": time.time(),
                    },
                )
            details = {
                "guarantee_gpus": quota.guarantee_gpus,
                "limit_gpus": quota.limit_gpus,
                "guarantee_memory_bytes": quota.guarantee_memory_bytes,
                "limit_memory_bytes": quota.limit_memory_bytes,
            }
            Store._event(conn, actor, "tenant.quota", None, quota.tenant, details)
        return quota

    def quotas(self) -> dict[str, Quota]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(schema.quotas)).all()
        return {
            row.tenant: Quota(
                tenant=row.tenant,
                guarantee_gpus=row.guarantee_gpus,
                limit_gpus=row.limit_gpus,
                guarantee_memory_bytes=None
                if row.guarantee_memory_bytes is None
                else int(row.guarantee_memory_bytes),
                limit_memory_bytes=None if row.limit_memory_bytes is None else int(row.limit_memory_bytes),
            )
            for row in rows
        }
