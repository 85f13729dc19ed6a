"""/v1/tenants: the admin creates tenants, hands out, rotates and revokes their tokens."""

from __future__ import annotations

from fastapi import APIRouter, status

from gpupool.api.deps import AuthDep, PoolDep, TenantDep
from gpupool.model.wire import TenantCreate, TenantCreated, TenantDeleted, TenantList, TenantPublic

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


@router.post("/{name}/token", response_model=TenantCreated)
def rotate_token(name: str, pool: PoolDep, auth: AuthDep, tenant: TenantDep) -> TenantCreated:
    """Admin: give a tenant a new token; the old one (and its dashboard sessions) are refused from
    this answer on. The new token is shown once."""
    pool.require_admin(tenant)
    return TenantCreated(name=name, token=auth.rotate_token(name, actor=tenant.name))


@router.delete("/{name}", response_model=TenantDeleted)
def delete_tenant(name: str, pool: PoolDep, tenant: TenantDep) -> TenantDeleted:
    """Admin: delete a tenant. Its token dies and its active claims are released in the same
    transaction (its workloads are then stopped); its ended claims stay in the audit trail."""
    pool.require_admin(tenant)
    released = pool.delete_tenant(name, actor=tenant.name)
    return TenantDeleted(name=name, released=[claim.id for claim in released])
