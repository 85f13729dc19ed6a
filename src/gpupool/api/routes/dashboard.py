"""The live dashboard: `/` (static page shipped in the package) and `GET /v1/overview` (its data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from gpupool.api.deps import PoolDep, TenantDep
from gpupool.api.live import LiveHub
from gpupool.api.overview import build_overview
from gpupool.model.overview import Overview

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["dashboard"])


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/v1/overview", response_model=Overview)
def overview(
    request: Request,
    pool: PoolDep,
    tenant: TenantDep,
    history: Annotated[bool, Query(description="include the utilization history")] = False,
) -> JSONResponse:
    """Everything the dashboard and `gpupool top` draw, as the caller may see it (an `Overview`;
    utilization and memory in use as of the last telemetry sample, taken every 2 s)."""
    hub: LiveHub | None = getattr(request.app.state, "hub", None)
    return JSONResponse(build_overview(pool, tenant, hub, with_history=history))


def mount_static(app: FastAPI) -> None:
    """Serve the dashboard's scripts and styles from the package (no CDN: works offline)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
