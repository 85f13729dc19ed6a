"""Idempotency keys: a client names a request once, and every retry of it gets the same result."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

from gpupool.model.claim import ClaimSpec


@dataclass(frozen=True)
class IdempotencyKey:
    """The client's key (unique per tenant) and the hash of what it asked for with it."""

    key: str
    request_hash: str

    @classmethod
    def for_claim(cls, key: str, spec: ClaimSpec, lease_ttl_s: float | None) -> IdempotencyKey:
        """Hash the claim as understood (so "10GiB" and 10737418240 are the same request)."""
        understood: dict[str, Any] = {**asdict(spec), "lease_ttl_s": lease_ttl_s}
        canonical = json.dumps(understood, sort_keys=True, separators=(",", ":"))
        return cls(key, hashlib.sha256(canonical.encode()).hexdigest())
