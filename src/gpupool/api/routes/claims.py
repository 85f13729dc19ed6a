"""/v1/claims: create, list, read and release claims."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from gpupool.api.convert import claim_public, json_response
from gpupool.api.deps import PoolDep, TenantDep
from gpupool.errors import InvalidRequest
from gpupool.model import ClaimState
from gpupool.model.wire import ClaimCreate, ClaimList, ClaimPublic
from gpupool.pool import PoolService

router = APIRouter(prefix="/v1/claims", tags=["claims"])


# The hot path: coroutines (the decision is short, the commit is awaited, see PoolService), and the
# pool taken from the app rather than through a dependency (FastAPI resolves each dependency per
# request; `TenantDep` stays, it is the authentication).
@router.post("", status_code=status.HTTP_201_CREATED, response_model=ClaimPublic)
async def create_claim(body: ClaimCreate, request: Request, tenant: TenantDep) -> Response:
    pool: PoolService = request.app.state.pool
    claim = await pool.create_claim_async(tenant, body.to_spec(), lease_ttl_s=body.lease_ttl_s)
    return json_response(claim_public(claim, pool.queue_position(claim)), status.HTTP_201_CREATED)


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
async def release_claim(claim_id: str, request: Request, tenant: TenantDep) -> Response:
    pool: PoolService = request.app.state.pool
    return json_response(claim_public(await pool.release_async(tenant, claim_id)))
