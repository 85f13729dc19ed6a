"""Bearer-token authentication: the admin token and per-tenant tokens, all kept only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from gpupool.api.session import Session, SessionSigner
from gpupool.config import data_dir, write_private
from gpupool.errors import Unauthorized
from gpupool.model import ADMIN, Tenant
from gpupool.store import Store

ADMIN_TOKEN_FILE = "admin-token"
ADMIN_TENANT = Tenant(name=ADMIN)  # frozen: one instance answers every admin request


def hash_token(token: str) -> str:
    # Tokens are 256-bit random strings, so a plain SHA-256 is enough (no dictionary to attack).
    return hashlib.sha256(token.encode()).hexdigest()


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def resolve_admin_token() -> tuple[str, Path | None]:
    """The admin token from GPUPOOL_ADMIN_TOKEN, else from (or newly into) a 0600 file.

    Returns the token and the file it lives in (None when it came from the environment).
    """
    from_env = os.environ.get("GPUPOOL_ADMIN_TOKEN")
    if from_env:
        return from_env, None
    path = data_dir() / ADMIN_TOKEN_FILE
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token, path
    token = new_token("gpa")
    write_private(path, token + "\n")
    return token, path


class Authenticator:
    def __init__(self, store: Store, admin_token: str) -> None:
        self.store = store
        self._admin_hash = hash_token(admin_token)
        self.sessions = SessionSigner(admin_token)

    def admin_for(self, authorization: str | None) -> Tenant | None:
        """The admin when the header carries the admin token, else None (without any I/O)."""
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        if hmac.compare_digest(hash_token(token.strip()), self._admin_hash):
            return ADMIN_TENANT
        return None

    def tenant_for(self, authorization: str | None, session_cookie: str | None = None) -> Tenant:
        """The caller, from `Authorization: Bearer TOKEN`, else from a dashboard session cookie."""
        if not authorization:
            if session_cookie:
                return self.tenant_for_session(session_cookie)
            raise Unauthorized("missing Authorization: Bearer TOKEN header")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Authorization header must be 'Bearer TOKEN'")
        return self.tenant_for_token(token)

    def tenant_for_token(self, token: str) -> Tenant:
        digest = hash_token(token)
        if hmac.compare_digest(digest, self._admin_hash):
            return Tenant(name=ADMIN)
        tenant = self.store.tenant_by_token_hash(digest)
        if tenant is None:
            raise Unauthorized("invalid token")
        return tenant

    def start_session(self, token: str) -> tuple[Tenant, Session]:
        """Check a token and sign a dashboard session for its tenant."""
        tenant = self.tenant_for_token(token)
        return tenant, self.sessions.issue(tenant.name, hash_token(token))

    def tenant_for_session(self, cookie: str) -> Tenant:
        session = self.sessions.decode(cookie)
        if session is None:
            raise Unauthorized("the dashboard session is invalid or has expired: sign in again")
        if session.tenant == ADMIN:
            tenant, current = Tenant(name=ADMIN), self._admin_hash
        else:
            found = self.store.tenant_with_token_hash(session.tenant)
            if found is None:
                raise Unauthorized("the dashboard session ended (tenant deleted): sign in again")
            tenant, current = found
        if not self.sessions.matches(session, current):
            raise Unauthorized("the dashboard session ended (token rotated): sign in again")
        return tenant

    def create_tenant(self, name: str, actor: str) -> tuple[Tenant, str]:
        token = new_token("gpt")
        tenant = self.store.create_tenant(name, hash_token(token), actor=actor)
        return tenant, token

    def rotate_token(self, name: str, actor: str) -> str:
        """A new token for a tenant; the old one (and its dashboard sessions) stop working at once."""
        token = new_token("gpt")
        self.store.rotate_token(name, hash_token(token), actor=actor)
        return token
