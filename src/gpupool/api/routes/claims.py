"""/v1/claims: create, list, read and release claims."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from gpupool.api.convert import claim_public
from gpupool.api.deps import PoolDep, TenantDep
from gpupool.errors import InvalidRequest
from gpupool.model import ClaimState
from gpupool.model.wire import ClaimCreate, ClaimList, ClaimPublic

router = APIRouter(prefix="/v1/claims", tags=["claims"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ClaimPublic)
def create_claim(body: ClaimCreate, pool: PoolDep, tenant: TenantDep) -> ClaimPublic:
    claim = pool.create_claim(tenant, body.to_spec(), lease_ttl_s=body.lease_ttl_s)
    return claim_public(claim, pool.queue_position(claim))


@router.get("", response_model=ClaimList)
def list_claims(
    pool: PoolDep,
    tenant: TenantDep,
    state: Annotated[list[str] | None, Query(description="filter by state; repeatable")] = None,
    prefix: Annotated[
        str | None, Query(max_length=64, description="only claims whose id starts with this")
    ] = None,
) -> ClaimList:
    states = None
    if state:
        try:
            states = [ClaimState(s) for s in state]
        except ValueError:
            known = ", ".join(s.value for s in ClaimState)
            raise InvalidRequest(f"state: unknown state in {state} (known: {known})") from None
    claims = pool.list_claims(tenant, states, id_prefix=prefix)
    positions = {c.id: i for i, c in enumerate(pool.queue(), start=1)}
    return ClaimList(items=[claim_public(c, positions.get(c.id)) for c in claims])


@router.get("/{claim_id}", response_model=ClaimPublic)
def get_claim(claim_id: str, pool: PoolDep, tenant: TenantDep) -> ClaimPublic:
    claim = pool.get_claim(tenant, claim_id)
    return claim_public(claim, pool.queue_position(claim))


@router.delete("/{claim_id}", response_model=ClaimPublic)
def release_claim(claim_id: str, pool: PoolDep, tenant: TenantDep) -> ClaimPublic:
    return claim_public(pool.release(tenant, claim_id))
