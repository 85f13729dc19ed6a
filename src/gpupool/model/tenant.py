"""Tenants own claims and authenticate with a bearer token (stored only as a hash)."""

from __future__ import annotations

from dataclasses import dataclass

ADMIN = "admin"


@dataclass(frozen=True)
class Tenant:
    name: str
    created_at: float = 0.0
    run_as: str | None = None  # the OS user its detached workloads run as; None: refused

    @property
    def is_admin(self) -> bool:
        return self.name == ADMIN
