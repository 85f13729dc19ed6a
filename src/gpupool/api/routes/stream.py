"""`GET /v1/stream`: server-sent events for the dashboard, pushed on every change.

The stream authenticates like every other call: the dashboard's session cookie (EventSource sends
it by itself) or an `Authorization: Bearer` header; a token is never taken from the URL. The first
message is `event: overview` with the whole snapshot and the utilization history; later ones are
`event: delta` with only what changed (see `gpupool.api.overview_diff`), or a new `overview` when
the set of devices changed. A tenant may hold `MAX_STREAMS_PER_TENANT` streams at once (429 beyond).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import StreamingResponse

from gpupool.api.deps import TenantDep
from gpupool.api.live import LiveHub
from gpupool.api.overview import ViewerMemo, build_overview
from gpupool.api.overview_diff import OverviewDiffer
from gpupool.errors import TooManyRequests
from gpupool.model import Tenant
from gpupool.pool import PoolService

KEEPALIVE_S = 15.0
STREAM_DOC = (
    "Server-sent events: `event: overview` (the whole `Overview`, first with `history`), then "
    "`event: delta` (changed device cards, changed lists, new events) on every change."
)


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


SSE_EVENT = {
    "type": "object",
    "description": "one server-sent event",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["overview", "delta", "refused"]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "overview: an `Overview`; delta: `generated_at`, `sample_id`, `devices` "
            "(changed cards), `events` (new ones) and any of the `Overview` lists that changed; "
            "refused: an `ErrorBody`",
        },
    },
}


@router.get(
    "/v1/stream",
    response_class=StreamingResponse,
    responses={200: {"description": STREAM_DOC, "content": {"text/event-stream": {"schema": SSE_EVENT}}}},
)
async def stream(request: Request, tenant: TenantDep) -> StreamingResponse:
    """Live updates of the dashboard's overview as seen by the caller."""
    hub: LiveHub = request.app.state.hub
    hub.check_capacity(tenant.name)  # 429 now; the stream itself subscribes when it starts
    pool: PoolService = request.app.state.pool
    return StreamingResponse(
        _messages(pool, hub, tenant),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _messages(pool: PoolService, hub: LiveHub, tenant: Tenant) -> AsyncIterator[str]:
    try:
        wakeups = hub.subscribe(tenant.name)
    except TooManyRequests as exc:  # another stream of this tenant opened in between
        yield _message("refused", json.dumps({"detail": exc.message}))
        return
    try:
        yield "retry: 2000\n\n"
        differ, memo = OverviewDiffer(), ViewerMemo.of(tenant)
        snapshot = await asyncio.to_thread(build_overview, pool, tenant, hub, True, memo)
        yield _message("overview", json.dumps(differ.full(snapshot), separators=(",", ":")))
        while True:
            try:
                await asyncio.wait_for(wakeups.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            while not wakeups.empty():  # several changes since: one message shows them all
                wakeups.get_nowait()
            snapshot = await asyncio.to_thread(build_overview, pool, tenant, hub, False, memo)
            kind, data = differ.delta(snapshot)
            yield _message(kind, json.dumps(data, separators=(",", ":")))
    finally:
        hub.unsubscribe(wakeups)


def _message(kind: str, data: str) -> str:
    return f"event: {kind}\ndata: {data}\n\n"
