"""/v1/session: the dashboard signs in with a token and gets an HttpOnly session cookie.

The token travels once, in a POST body; the page never stores it (no localStorage, no URL). The
cookie is HttpOnly (scripts cannot read it), SameSite=Strict (other sites cannot send it) and
Secure when the server is reached over HTTPS; `DELETE /v1/session` signs out.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from gpupool.api.deps import AuthDep, TenantDep
from gpupool.api.session import SESSION_COOKIE, SESSION_TTL_S

router = APIRouter(prefix="/v1/session", tags=["session"])


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    token: str = Field(min_length=1, max_length=512, description="the admin's or a tenant's token")


class SessionPublic(BaseModel):
    tenant: str
    admin: bool
    expires_at: float | None = Field(
        None, description="when the session ends (epoch seconds); null for a bearer token"
    )


@router.post(
    "",
    response_model=SessionPublic,
    responses={401: {"description": "the token is not valid"}},
)
def sign_in(body: SessionCreate, request: Request, response: Response, auth: AuthDep) -> SessionPublic:
    """Check a token and set the dashboard's session cookie."""
    tenant, session = auth.start_session(body.token)
    response.set_cookie(
        SESSION_COOKIE,
        auth.sessions.encode(session),
        max_age=SESSION_TTL_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return SessionPublic(tenant=tenant.name, admin=tenant.is_admin, expires_at=session.expires_at)


@router.get("", response_model=SessionPublic)
def whoami(request: Request, auth: AuthDep, tenant: TenantDep) -> SessionPublic:
    """Who the caller is (the dashboard asks when its stream drops: a 401 means sign in again)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    session = None if request.headers.get("authorization") or not cookie else auth.sessions.decode(cookie)
    return SessionPublic(
        tenant=tenant.name, admin=tenant.is_admin, expires_at=None if session is None else session.expires_at
    )


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(response: Response) -> Response:
    """Forget the session cookie in this browser (rotate the token to end every session)."""
    response.status_code = status.HTTP_204_NO_CONTENT
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response
