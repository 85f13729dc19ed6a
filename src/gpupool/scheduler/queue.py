"""Queue sort: which pending claim is tried first (higher priority, then the one that came first)."""

from __future__ import annotations

from collections.abc import Iterable

from gpupool.model import Claim

NAME = "priority-sort"


def queue_key(claim: Claim) -> tuple[int, float, str]:
    """Sort key: priority descending, then creation time, then id (stable and total)."""
    return (-claim.spec.priority, claim.created_at, claim.id)


def queue_order(claims: Iterable[Claim]) -> list[Claim]:
    """Pending claims in the order the scheduler should try them."""
    return sorted(claims, key=queue_key)
