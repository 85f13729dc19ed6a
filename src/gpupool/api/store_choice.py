"""One server, one store: the store `serve` opens for its pool.

A store remembers the pool it was first used by (`store.pool_owner`). Without `--db`, a server whose
pool differs from the default store's gets a default store of its own, named by its pool (so
`serve --simulate 2x8xH100-80GB --port 7071` beside the usual server never shares its claims). With
`--db`, a store of another pool is refused with a one-line reason.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from gpupool.config import data_dir
from gpupool.devices.base import DeviceBackend
from gpupool.devices.simulated import SimulatedBackend
from gpupool.devices.spec import parse_spec
from gpupool.errors import InvalidRequest
from gpupool.store import Store
from gpupool.store.pool_owner import claim_store

DEFAULT_STORE = "gpupool.db"
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")


def pool_identity(backend: DeviceBackend) -> str:
    """What makes a pool this pool: the canonical simulated spec, the NVML host, or the engine."""
    if isinstance(backend, SimulatedBackend):
        groups = parse_spec(backend.spec)
        return "simulated:" + ",".join(f"{g.nodes}x{g.gpus_per_node}x{g.model.name}" for g in groups)
    node = getattr(backend, "node_name", None)
    return f"{backend.name}:{node}" if isinstance(node, str) and node else backend.name


def store_file_for(pool: str) -> str:
    """`gpupool-simulated-2x8xH100-80GB_1x4xA100-40GB.db`: a file name that says whose store it is."""
    name = _UNSAFE.sub("_", pool.replace(":", "-", 1).replace(",", "_")).strip("_")
    if len(name) > 80:  # very long specs: keep it readable and unique
        name = f"{name[:60]}-{hashlib.sha256(pool.encode()).hexdigest()[:12]}"
    return f"gpupool-{name}.db"


def open_store(db: str | None, pool: str) -> tuple[Store, str | None]:
    """The store for a server of `pool`, and a notice to log when it is not the usual one."""
    if db is not None:
        # A store named on purpose is shared on purpose: replicas on several hosts (or a host whose
        # GPUs changed) all use it. Only the default store is kept apart per pool.
        store = Store(db)
        owner = claim_store(store, pool)
        if owner != pool:
            return store, f"db: {db} was first used by the pool {owner}; this server ({pool}) shares it"
        return store, None
    default = data_dir() / DEFAULT_STORE
    store = Store(default)
    owner = claim_store(store, pool)
    if owner == pool:
        return store, None
    store.close()
    own: Path = data_dir() / store_file_for(pool)
    store = Store(own)
    if claim_store(store, pool) != pool:
        store.close()
        raise InvalidRequest(f"db: {own} belongs to another pool; give this one a --db")
    notice = f"the default store belongs to the pool {owner}; this pool ({pool}) keeps its own: {own}"
    return store, notice
