"""/v1/events: the audit trail (a tenant sees the events of its own claims)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gpupool.api.convert import event_public
from gpupool.api.deps import PoolDep, TenantDep
from gpupool.model.wire import EventList

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.get("", response_model=EventList)
def list_events(
    pool: PoolDep,
    tenant: TenantDep,
    claim: Annotated[str | None, Query(description="only this claim's events")] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="only events with a larger id")] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 200,
) -> EventList:
    events = pool.events(tenant, claim_id=claim, after_id=after, limit=limit)
    return EventList(items=[event_public(e) for e in events])
