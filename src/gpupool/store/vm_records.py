"""Durable records of the `vms` adapter: which host device gpupool attached to which domain.

Kept apart from `Store` (claims and bindings) like the agent's records; each method is one short
transaction. The claim itself is bound through the pool first, so a record always has its claim.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sqlalchemy import Row, delete, insert, select, update

from gpupool.model.vm import HostdevMode, HostdevState, PciAddress, VmHostdevRecord
from gpupool.store import schema
from gpupool.store.store import Store


class VmRecords:
    """Host devices attached to domains, by claim."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine

    def add(self, records: Sequence[VmHostdevRecord]) -> None:
        """Record every hostdev of one attach at once (state `attaching`)."""
        now = time.time()
        with self.engine.begin() as conn:
            for record in records:
                conn.execute(
                    insert(schema.vm_hostdevs),
                    {
                        "claim_id": record.claim_id,
                        "tenant": record.tenant,
                        "domain": record.domain,
                        "domain_uuid": record.domain_uuid,
                        "device_uuid": record.device_uuid,
                        "mode": record.mode.value,
                        "profile": record.profile,
                        "type_id": record.type_id,
                        "address": str(record.address),
                        "mdev_uuid": record.mdev_uuid,
                        "state": record.state.value,
                        "created_at": now,
                        "updated_at": now,
                    },
                )

    def set_state(self, claim_id: str, state: HostdevState) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(schema.vm_hostdevs)
                .where(schema.vm_hostdevs.c.claim_id == claim_id)
                .values(state=state.value, updated_at=time.time())
            )

    def rename_domain(self, domain_uuid: str, name: str) -> None:
        """A domain keeps its UUID across a rename; its records follow it."""
        with self.engine.begin() as conn:
            conn.execute(
                update(schema.vm_hostdevs)
                .where(schema.vm_hostdevs.c.domain_uuid == domain_uuid)
                .values(domain=name, updated_at=time.time())
            )

    def remove(self, claim_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(schema.vm_hostdevs).where(schema.vm_hostdevs.c.claim_id == claim_id))

    def records(self, claim_id: str | None = None, domain_uuid: str | None = None) -> list[VmHostdevRecord]:
        """Records, oldest first; filtered by claim or domain when given."""
        query = select(schema.vm_hostdevs).order_by(schema.vm_hostdevs.c.id)
        if claim_id is not None:
            query = query.where(schema.vm_hostdevs.c.claim_id == claim_id)
        if domain_uuid is not None:
            query = query.where(schema.vm_hostdevs.c.domain_uuid == domain_uuid)
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]


def _record(row: Row[tuple[object, ...]]) -> VmHostdevRecord:
    return VmHostdevRecord(
        claim_id=row.claim_id,
        tenant=row.tenant,
        domain=row.domain,
        domain_uuid=row.domain_uuid,
        device_uuid=row.device_uuid,
        mode=HostdevMode(row.mode),
        address=PciAddress.parse(row.address),
        state=HostdevState(row.state),
        profile=row.profile,
        type_id=row.type_id,
        mdev_uuid=row.mdev_uuid,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
