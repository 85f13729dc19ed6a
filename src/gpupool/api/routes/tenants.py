"""/v1/tenants: the admin creates tenants, hands out their tokens and maps them to OS users."""

from __future__ import annotations

from fastapi import APIRouter, status

from gpupool.agent.trust import resolve_user
from gpupool.api.deps import AuthDep, PoolDep, TenantDep
from gpupool.errors import Forbidden, InvalidRequest
from gpupool.model import Tenant
from gpupool.model.wire import TenantCreate, TenantCreated, TenantList, TenantPublic, TenantUpdate

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
    return TenantList(items=[tenant_public(t) for t in tenants])


@router.patch("/{name}", response_model=TenantPublic)
def update_tenant(name: str, body: TenantUpdate, pool: PoolDep, tenant: TenantDep) -> TenantPublic:
    """Admin: map the tenant to the OS user its detached workloads run as (`run_as`; null removes
    it, and the tenant's detached workloads are refused again). Never root or the server's user."""
    pool.require_admin(tenant)
    if body.run_as is not None:
        try:
            resolve_user(body.run_as)
        except Forbidden as exc:
            raise InvalidRequest(f"run_as: {exc.message}") from None
    return tenant_public(pool.store.set_run_as(name, body.run_as, actor=tenant.name))


def tenant_public(tenant: Tenant) -> TenantPublic:
    return TenantPublic(name=tenant.name, created_at=tenant.created_at, run_as=tenant.run_as)
