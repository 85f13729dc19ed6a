"""Quotas (`/v1/quotas`, `/v1/tenants/{name}/quota`) and admin preemption of a claim."""

from __future__ import annotations

from fastapi import APIRouter

from gpupool.api.convert import claim_public
from gpupool.api.deps import PoolDep, TenantDep
from gpupool.errors import Conflict, NotFound
from gpupool.model import ClaimState
from gpupool.model.quota import QuotaList, QuotaPublic, QuotaUpdate, quota_public
from gpupool.model.wire import ClaimPublic
from gpupool.pool import preemption
from gpupool.store.quotas import QuotaRecords

router = APIRouter(tags=["quotas"])


@router.get("/v1/quotas", response_model=QuotaList)
def list_quotas(pool: PoolDep, tenant: TenantDep) -> QuotaList:
    """Every quota (admin) or the caller's own."""
    quotas = QuotaRecords(pool.store).quotas()
    return QuotaList(
        items=[
            quota_public(q) for name, q in sorted(quotas.items()) if tenant.is_admin or name == tenant.name
        ]
    )


@router.put("/v1/tenants/{name}/quota", response_model=QuotaPublic)
def set_quota(name: str, body: QuotaUpdate, pool: PoolDep, tenant: TenantDep) -> QuotaPublic:
    """Set a tenant's guarantee and limit (admin); `none` or omitted clears that part."""
    pool.require_admin(tenant)
    if name not in {t.name for t in pool.store.list_tenants()}:
        raise NotFound(f"tenant {name!r} not found")
    quota = QuotaRecords(pool.store).set_quota(body.to_quota(name), actor=tenant.name)
    pool.schedule()  # a raised limit or a new guarantee may let waiting claims bind now
    return quota_public(quota)


@router.post("/v1/claims/{claim_id}/preempt", response_model=ClaimPublic)
def preempt_claim(claim_id: str, pool: PoolDep, tenant: TenantDep) -> ClaimPublic:
    """Preempt a bound claim now (admin): it ends as `preempted`, its workload is stopped."""
    pool.require_admin(tenant)
    claim = pool.get_claim(tenant, claim_id)
    if claim.state != ClaimState.BOUND:
        raise Conflict(f"claim {claim_id} is {claim.state.value}, only bound claims can be preempted")
    ended = preemption.preempt(pool.store, [claim], reason="preempted by the admin", actor=tenant.name)
    if ended:
        pool.observer.on_preemption(claim.tenant, 1)
    pool.schedule()
    return claim_public(pool.store.get_claim(claim_id))
