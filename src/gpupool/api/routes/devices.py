"""/v1/devices: the inventory with what is bound to each device."""

from __future__ import annotations

from fastapi import APIRouter

from gpupool.api.convert import device_public
from gpupool.api.deps import PoolDep, TenantDep
from gpupool.model.wire import DeviceList

router = APIRouter(prefix="/v1/devices", tags=["devices"])


@router.get("", response_model=DeviceList)
def list_devices(pool: PoolDep, _tenant: TenantDep) -> DeviceList:
    return DeviceList(items=[device_public(view) for view in pool.device_views()])
