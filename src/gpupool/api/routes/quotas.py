"""Quotas (`/v1/quotas`, `/v1/tenants/{name}/quota`) and admin preemption of a claim."""

from __future__ import annotations

from fastapi import APIRouter

from gpupool.api.convert import claim_public
from gpupool.api.deps import PoolDep, TenantDep
from gpupool.errors import Conflict, InvalidRequest, NotFound
from gpupool.model.quota import QuotaList, QuotaPublic, QuotaUpdate, quota_public
from gpupool.model.wire import ClaimPublic
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
    try:
        wanted = body.to_quota(name)
    except InvalidRequest as exc:  # each amount is well-formed; together they contradict
        raise Conflict(exc.message) from None
    quota = QuotaRecords(pool.store).set_quota(wanted, actor=tenant.name)
    pool.schedule()  # a raised limit or a new guarantee may let waiting claims bind now
    return quota_public(quota)


@router.post("/v1/claims/{claim_id}/preempt", response_model=ClaimPublic)
def preempt_claim(claim_id: str, pool: PoolDep, tenant: TenantDep) -> ClaimPublic:
    """Preempt a bound claim (admin): its workload gets the grace period (SIGTERM, then SIGKILL),
    then the claim ends as `preempted`; until then it is bound with `preempt_deadline` set."""
    return claim_public(pool.preempt(tenant, claim_id))
