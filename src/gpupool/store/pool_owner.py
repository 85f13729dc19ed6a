"""Which pool a store belongs to: recorded by the first server that uses it, checked by the rest.

Two servers with different inventories on one store would each see the other's claims on devices
they do not have (and mark them missing). The first server writes its pool identity (e.g.
`simulated:2x8xH100-80GB`, `nvml:host-a`, `ray`) into `store_meta`; a later one reads it back.
"""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from gpupool.store import schema
from gpupool.store.store import Store

POOL_KEY = "pool"


def store_owner(store: Store) -> str | None:
    """The pool the store belongs to, None while no server has used it."""
    with store.engine.connect() as conn:
        row = conn.execute(
            select(schema.store_meta.c.value).where(schema.store_meta.c.key == POOL_KEY)
        ).first()
    return None if row is None else str(row.value)


def claim_store(store: Store, pool: str) -> str:
    """Record `pool` as the store's owner unless it has one; return the owner it has now."""
    owner = store_owner(store)
    if owner is not None:
        return owner
    try:
        with store.engine.begin() as conn:
            conn.execute(insert(schema.store_meta), {"key": POOL_KEY, "value": pool})
    except IntegrityError:  # another server claimed it first, at the same moment
        pass
    return store_owner(store) or pool
