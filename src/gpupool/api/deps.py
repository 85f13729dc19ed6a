"""Annotated dependency aliases used by the route modules."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request
from starlette.concurrency import run_in_threadpool

from gpupool.api.auth import Authenticator
from gpupool.model import Tenant
from gpupool.pool import PoolService

# Dependencies are coroutines: FastAPI runs a plain function dependency in a worker thread, a hop
# (two thread switches) per dependency per request that these do not need.


async def get_pool(request: Request) -> PoolService:
    pool: PoolService = request.app.state.pool
    return pool


async def get_tenant(request: Request, authorization: Annotated[str | None, Header()] = None) -> Tenant:
    auth: Authenticator = request.app.state.auth
    admin = auth.admin_for(authorization)  # no I/O: checked on the event loop
    if admin is not None:
        return admin
    return await run_in_threadpool(auth.tenant_for, authorization)  # a database read


def get_auth(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


PoolDep = Annotated[PoolService, Depends(get_pool)]
TenantDep = Annotated[Tenant, Depends(get_tenant)]
AuthDep = Annotated[Authenticator, Depends(get_auth)]
