"""/metrics: Prometheus text exposition (no token, like most exporters; keep the port private)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gpupool.api.metrics import PoolMetrics, RequestMetricsMiddleware
from gpupool.pool import PoolService

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    registry: PoolMetrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI, pool: PoolService) -> PoolMetrics:
    """Give the app its own registry, time its requests, and watch the pool's scheduler."""
    metrics_ = PoolMetrics(pool)
    app.state.metrics = metrics_
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics_)
    pool.observer = metrics_
    return metrics_
