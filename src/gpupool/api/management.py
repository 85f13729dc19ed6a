"""The management surface of the app: /metrics, the live dashboard, its event stream, quotas."""

from __future__ import annotations

from fastapi import FastAPI

from gpupool.api.routes import dashboard, metrics, quotas, stream
from gpupool.pool import PoolService


def install(app: FastAPI, pool: PoolService) -> None:
    """Add the management routes to the app and hook its metrics to the pool."""
    metrics.install(app, pool)
    for module in (metrics, dashboard, stream, quotas):
        app.include_router(module.router)
    dashboard.mount_static(app)
