"""Dashboard sessions: a signed, HttpOnly, SameSite=Strict cookie instead of a token in the page.

The cookie names the tenant and a prefix of its current token hash, with an expiry, signed with a
key derived from the admin token. Nothing is stored server-side, yet a session dies at once when
its tenant's token is rotated or the tenant is deleted (the hash no longer matches), and every
session dies when the admin token changes. A session cannot be used where the server is not: the
key never leaves it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

SESSION_COOKIE = "gpupool_session"
SESSION_TTL_S = 12 * 3600
"""A dashboard session lasts 12 hours, then the page asks for the token again."""
CSRF_HEADER = "X-Gpupool-Csrf"
"""Changes made with a session cookie must carry this header: a form on another page cannot set
it, so a page on another port of the same host (same site for SameSite) cannot act as the user."""
_HASH_PREFIX_CHARS = 32


@dataclass(frozen=True)
class Session:
    tenant: str
    token_hash_prefix: str
    expires_at: float


class SessionSigner:
    def __init__(self, admin_token: str) -> None:
        self._key = hmac.new(admin_token.encode(), b"gpupool dashboard session v1", hashlib.sha256).digest()

    def issue(self, tenant: str, token_hash: str, now: float | None = None) -> Session:
        expires = (time.time() if now is None else now) + SESSION_TTL_S
        return Session(tenant, token_hash[:_HASH_PREFIX_CHARS], round(expires, 3))

    def encode(self, session: Session) -> str:
        payload = json.dumps(
            {"t": session.tenant, "h": session.token_hash_prefix, "e": session.expires_at},
            separators=(",", ":"),
        ).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def decode(self, value: str, now: float | None = None) -> Session | None:
        """The session in a cookie value, or None when it is forged, malformed or expired."""
        payload_text, _, signature_text = value.partition(".")
        try:
            payload = _unb64(payload_text)
            signature = _unb64(signature_text)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(signature, self._sign(payload)):
            return None
        try:
            fields = json.loads(payload)
            session = Session(str(fields["t"]), str(fields["h"]), float(fields["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires_at <= (time.time() if now is None else now):
            return None
        return session

    @staticmethod
    def matches(session: Session, token_hash: str) -> bool:
        return hmac.compare_digest(session.token_hash_prefix, token_hash[:_HASH_PREFIX_CHARS])

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or len(text) > 4096:
        raise ValueError("bad length")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
