"""/v1/claims: create, list, read and release claims."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status

from gpupool.api.convert import claim_json, claim_public, raw_json_response
from gpupool.api.deps import PoolDep, TenantDep
from gpupool.api.lean_route import lean_route
from gpupool.api.pagination import CursorQuery, cursor_value, limit_query
from gpupool.errors import Conflict, InvalidRequest
from gpupool.model import ClaimState
from gpupool.model.idempotency import IdempotencyKey
from gpupool.model.wire import ClaimCreate, ClaimList, ClaimPublic
from gpupool.pool import PoolService

router = APIRouter(prefix="/v1/claims", tags=["claims"])

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[!-~]+$",
        description="a client-chosen key (e.g. a UUID): a retry with the same key and body returns the "
        "claim the first request made, even across a server crash; the same key with another body is 409",
    ),
]


# The hot path: coroutines (the decision is short, the commit is awaited, see PoolService), the pool
# taken from the app rather than through a dependency, and answered by `LeanRoute` (the same
# validation and errors with less of FastAPI's per-request machinery; `TenantDep` stays, it is the
# authentication).
@lean_route(router, "", methods=["POST"], status_code=status.HTTP_201_CREATED, response_model=ClaimPublic)
async def create_claim(
    body: ClaimCreate, request: Request, tenant: TenantDep, idempotency_key: IdempotencyKeyHeader = None
) -> Response:
    pool: PoolService = request.app.state.pool
    try:
        spec = body.to_spec()
    except InvalidRequest as exc:  # each field is well-formed; together they contradict (mig + memory)
        raise Conflict(exc.message) from None
    idempotency = (
        None if idempotency_key is None else IdempotencyKey.for_claim(idempotency_key, spec, body.lease_ttl_s)
    )
    claim = await pool.create_claim_async(tenant, spec, lease_ttl_s=body.lease_ttl_s, idempotency=idempotency)
    return raw_json_response(claim_json(claim, pool.queue_position(claim)), status.HTTP_201_CREATED)


@router.get("", response_model=ClaimList)
def list_claims(
    pool: PoolDep,
    tenant: TenantDep,
    state: Annotated[list[ClaimState] | None, Query(description="filter by state; repeatable")] = None,
    prefix: Annotated[
        str | None, Query(max_length=64, description="only claims whose id starts with this")
    ] = None,
    limit: Annotated[int, limit_query(500, 1000)] = 500,
    cursor: CursorQuery = None,
) -> ClaimList:
    """Your claims (every claim for the admin), newest first, one page at a time."""
    claims, next_seq = pool.claims_page(tenant, state or None, limit, cursor_value(cursor), id_prefix=prefix)
    positions = {c.id: i for i, c in enumerate(pool.queue(), start=1)}
    return ClaimList(
        items=[claim_public(c, positions.get(c.id)) for c in claims],
        next_cursor=None if next_seq is None else str(next_seq),
        has_more=next_seq is not None,
    )


@router.get("/{claim_id}", response_model=ClaimPublic)
def get_claim(claim_id: str, pool: PoolDep, tenant: TenantDep) -> ClaimPublic:
    claim = pool.get_claim(tenant, claim_id)
    return claim_public(claim, pool.queue_position(claim))


@lean_route(router, "/{claim_id}", methods=["DELETE"], response_model=ClaimPublic)
async def release_claim(claim_id: str, request: Request, tenant: TenantDep) -> Response:
    pool: PoolService = request.app.state.pool
    return raw_json_response(claim_json(await pool.release_async(tenant, claim_id)))
