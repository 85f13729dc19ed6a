"""Durable tenant quotas, each change one transaction with its audit event."""

from __future__ import annotations

import time

from sqlalchemy import delete, insert

from gpupool.model.quota import Quota
from gpupool.store import schema
from gpupool.store.commit import Tx
from gpupool.store.store import Store


class QuotaRecords:
    """Quotas in the pool's database (a tenant without a row has no quota); read from the store's
    in-memory state, which every change updates once committed."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    def set_quota(self, quota: Quota, actor: str) -> Quota:
        """Replace a tenant's quota (an empty quota removes it) and log `tenant.quota`."""

        def unit(tx: Tx) -> None:
            conn = tx.conn
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
            tx.changes.quotas[quota.tenant] = None if quota.is_empty else quota

        self.store.write(unit)
        return quota

    def quotas(self) -> dict[str, Quota]:
        return dict(self.store.view().quotas)
