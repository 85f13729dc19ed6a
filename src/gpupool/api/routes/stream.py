"""`GET /v1/stream`: server-sent events with the dashboard's overview, pushed on every change.

EventSource cannot set headers, so the token may come as `?token=` as well as the usual
`Authorization: Bearer` header. Each message is `event: overview` with the JSON snapshot; the
first one carries the utilization history.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import StreamingResponse

from gpupool.api.auth import Authenticator
from gpupool.api.live import LiveHub
from gpupool.api.overview import build_overview
from gpupool.model import Tenant
from gpupool.pool import PoolService

KEEPALIVE_S = 15.0


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the app's live hub while the app runs."""
    hub = LiveHub(app.state.pool)
    app.state.hub = hub
    task = asyncio.create_task(hub.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


router = APIRouter(tags=["dashboard"], lifespan=lifespan)


@router.get("/v1/stream")
async def stream(
    request: Request,
    token: Annotated[str | None, Query(description="bearer token, for EventSource")] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    auth: Authenticator = request.app.state.auth
    tenant = auth.tenant_for(authorization or (f"Bearer {token}" if token else None))
    pool: PoolService = request.app.state.pool
    hub: LiveHub = request.app.state.hub
    return StreamingResponse(
        _messages(pool, hub, tenant),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _messages(pool: PoolService, hub: LiveHub, tenant: Tenant) -> AsyncIterator[str]:
    wakeups = hub.subscribe()
    try:
        yield "retry: 2000\n\n"
        with_history = True
        while True:
            snapshot = await asyncio.to_thread(build_overview, pool, tenant, hub, with_history)
            with_history = False
            yield f"event: overview\ndata: {snapshot.model_dump_json()}\n\n"
            try:
                await asyncio.wait_for(wakeups.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ": keepalive\n\n"
            while not wakeups.empty():  # several changes since: one snapshot shows them all
                wakeups.get_nowait()
    finally:
        hub.unsubscribe(wakeups)
