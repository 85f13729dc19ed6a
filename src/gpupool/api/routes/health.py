"""/healthz: liveness without auth (for load balancers and `gpupool` itself)."""

from __future__ import annotations

from fastapi import APIRouter

from gpupool import __version__
from gpupool.api.deps import PoolDep
from gpupool.model.wire import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz(pool: PoolDep) -> Health:
    return Health(
        status="ok",
        version=__version__,
        backend=pool.backend.name,
        devices=len(pool.devices),
        policy=pool.placer.name,
    )
