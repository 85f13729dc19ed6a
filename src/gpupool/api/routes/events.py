"""/v1/events: the audit trail (a tenant sees the events of its own claims).

Without `after` or `cursor` the answer is the newest `limit` events (a tail); with either, the
events after that id, oldest first, one page at a time. `next_cursor` always says where to go on
from, so a client follows the trail by passing it back.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gpupool.api.convert import event_public
from gpupool.api.deps import PoolDep, TenantDep
from gpupool.api.pagination import CursorQuery, cursor_value, limit_query
from gpupool.model.wire import EventList

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.get("", response_model=EventList)
def list_events(
    pool: PoolDep,
    tenant: TenantDep,
    claim: Annotated[str | None, Query(max_length=64, description="only this claim's events")] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="only events with a larger id")] = 0,
    limit: Annotated[int, limit_query(200, 10_000)] = 200,
    cursor: CursorQuery = None,
) -> EventList:
    start = cursor_value(cursor)
    if start is None and after > 0:
        start = after
    if start is None:  # the tail: the newest events, nothing newer waiting
        events = pool.events(tenant, claim_id=claim, after_id=0, limit=limit)
        last = events[-1].id if events else 0
        return EventList(items=[event_public(e) for e in events], next_cursor=str(last), has_more=False)
    events = pool.events(tenant, claim_id=claim, after_id=start, limit=limit + 1)
    page = events[:limit]
    last = page[-1].id if page else start
    return EventList(
        items=[event_public(e) for e in page], next_cursor=str(last), has_more=len(events) > limit
    )
