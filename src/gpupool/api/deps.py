"""Annotated dependency aliases used by the route modules."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyCookie, HTTPBearer
from starlette.concurrency import run_in_threadpool

from gpupool.api.auth import Authenticator
from gpupool.api.session import CSRF_HEADER, SESSION_COOKIE
from gpupool.errors import Forbidden
from gpupool.model import Tenant
from gpupool.pool import PoolService

# The security schemes the OpenAPI document names on every operation behind `get_tenant`
# (`gpupool.api.openapi` adds them). They are not sub-dependencies of `get_tenant`: FastAPI would
# resolve both on every request only for `get_tenant` to read the header and the cookie itself (so
# that a malformed header gets a message that says what is wrong with it).
bearer_scheme = HTTPBearer(
    auto_error=False, description="a tenant's token (`gpupool tenants create`) or the admin token"
)
session_scheme = APIKeyCookie(
    name=SESSION_COOKIE, auto_error=False, description="the dashboard's session (`POST /v1/session`)"
)
SECURITY_SCHEMES = (bearer_scheme, session_scheme)
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# Dependencies are coroutines: FastAPI runs a plain function dependency in a worker thread, a hop
# (two thread switches) per dependency per request that these do not need.


async def get_pool(request: Request) -> PoolService:
    pool: PoolService = request.app.state.pool
    return pool


async def get_tenant(request: Request) -> Tenant:
    auth: Authenticator = request.app.state.auth
    authorization = request.headers.get("authorization")
    admin = auth.admin_for(authorization)  # no I/O: checked on the event loop
    if admin is not None:
        return admin
    cookie = request.cookies.get(SESSION_COOKIE)
    tenant = await run_in_threadpool(auth.tenant_for, authorization, cookie)  # a database read
    if not authorization and request.method not in SAFE_METHODS and request.headers.get(CSRF_HEADER) != "1":
        raise Forbidden(f"a change made with a session cookie needs the {CSRF_HEADER}: 1 header")
    return tenant


def get_auth(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


PoolDep = Annotated[PoolService, Depends(get_pool)]
TenantDep = Annotated[Tenant, Depends(get_tenant)]
AuthDep = Annotated[Authenticator, Depends(get_auth)]
