"""/v1/devices: the inventory with what is bound to each device, filtered and one page at a time.

A tenant sees every device and how full it is, but only its own claims' ids on them.
"""

from __future__ import annotations

import fnmatch
from typing import Annotated

from fastapi import APIRouter, Query

from gpupool.api.convert import device_public
from gpupool.api.deps import PoolDep, TenantDep
from gpupool.api.pagination import CursorQuery, cursor_value, limit_query
from gpupool.model.wire import DeviceList
from gpupool.pool import DeviceView

router = APIRouter(prefix="/v1/devices", tags=["devices"])


@router.get("", response_model=DeviceList)
def list_devices(
    pool: PoolDep,
    tenant: TenantDep,
    node: Annotated[str | None, Query(max_length=255, description="only this node's devices")] = None,
    model: Annotated[
        str | None, Query(max_length=128, description='model pattern, e.g. "H100*" (case-insensitive)')
    ] = None,
    free: Annotated[
        bool | None, Query(description="true: only devices with nothing bound; false: only those in use")
    ] = None,
    limit: Annotated[int, limit_query(1000, 5000)] = 1000,
    cursor: CursorQuery = None,
) -> DeviceList:
    """Devices in inventory order (node, index); the cursor is the place in that order."""
    views = [view for view in pool.device_views() if _selected(view, node, model, free)]
    start = cursor_value(cursor) or 0
    page = views[start : start + limit]
    more = start + limit < len(views)
    return DeviceList(
        items=[device_public(view, tenant) for view in page],
        next_cursor=str(start + limit) if more else None,
        has_more=more,
    )


def _selected(view: DeviceView, node: str | None, model: str | None, free: bool | None) -> bool:
    if node is not None and view.device.node != node:
        return False
    if model is not None and not fnmatch.fnmatchcase(view.device.model.lower(), model.lower()):
        return False
    in_use = bool(view.claim_ids) or view.allocated_memory_bytes > 0 or view.allocated_compute_percent > 0
    return free is None or free != in_use
