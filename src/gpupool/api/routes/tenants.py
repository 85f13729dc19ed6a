"""/v1/tenants: the admin creates tenants and hands out their tokens."""

from __future__ import annotations

from fastapi import APIRouter, status

from gpupool.api.deps import AuthDep, PoolDep, TenantDep
from gpupool.model.wire import TenantCreate, TenantCreated, TenantList, TenantPublic

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TenantCreated)
def create_tenant(body: TenantCreate, pool: PoolDep, auth: AuthDep, tenant: TenantDep) -> TenantCreated:
    pool.require_admin(tenant)
    created, token = auth.create_tenant(body.name, actor=tenant.name)
    return TenantCreated(name=created.name, token=token)


@router.get("", response_model=TenantList)
def list_tenants(pool: PoolDep, tenant: TenantDep) -> TenantList:
    tenants = (
        pool.store.list_tenants()
        if tenant.is_admin
        else [t for t in pool.store.list_tenants() if t.name == tenant.name]
    )
    return TenantList(items=[TenantPublic(name=t.name, created_at=t.created_at) for t in tenants])
