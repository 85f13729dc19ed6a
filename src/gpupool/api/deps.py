"""Annotated dependency aliases used by the route modules."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from gpupool.api.auth import Authenticator
from gpupool.model import Tenant
from gpupool.pool import PoolService


def get_pool(request: Request) -> PoolService:
    pool: PoolService = request.app.state.pool
    return pool


def get_tenant(request: Request, authorization: Annotated[str | None, Header()] = None) -> Tenant:
    auth: Authenticator = request.app.state.auth
    return auth.tenant_for(authorization)


def get_auth(request: Request) -> Authenticator:
    auth: Authenticator = request.app.state.auth
    return auth


PoolDep = Annotated[PoolService, Depends(get_pool)]
TenantDep = Annotated[Tenant, Depends(get_tenant)]
AuthDep = Annotated[Authenticator, Depends(get_auth)]
