"""The committed pool state, kept in memory: reads are served from it, never from the database.

The database stays the durable record. This is a cache of its active part (pending and bound claims
with their bindings, the bound totals of every present device, quotas), changed only after a commit,
by exactly what that commit wrote (`Changes`), and reloaded whole when another process is seen to
have written (the `store_generation` counter moved, see `gpupool.store.commit`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from gpupool.model import Claim, ClaimState
from gpupool.model.quota import Quota


@dataclass
class Changes:
    """What one transaction changed, applied to the `PoolState` once it has committed."""

    claims: dict[str, Claim] = field(default_factory=dict)  # id -> the claim as it is now
    allocations: dict[str, list[int]] = field(default_factory=dict)  # uuid -> [memory, compute] delta
    quotas: dict[str, Quota | None] = field(default_factory=dict)  # tenant -> quota (None: removed)
    reload: bool = False  # too broad to track (inventory sync): reload the whole state instead

    def put(self, claim: Claim) -> None:
        self.claims[claim.id] = claim

    def charge(self, device_uuid: str, memory_bytes: int, compute_percent: int) -> None:
        """Add to (or, with negative amounts, take from) a device's bound totals."""
        delta = self.allocations.setdefault(device_uuid, [0, 0])
        delta[0] += memory_bytes
        delta[1] += compute_percent

    def merge(self, later: Changes) -> None:
        """Fold the changes of a later transaction into these."""
        self.claims.update(later.claims)
        for uuid, (memory, compute) in later.allocations.items():
            self.charge(uuid, memory, compute)
        self.quotas.update(later.quotas)
        self.reload = self.reload or later.reload

    @property
    def device_deltas(self) -> list[tuple[str, int, int]]:
        """(uuid, memory delta, compute delta) of every device whose totals changed."""
        return [(uuid, m, c) for uuid, (m, c) in self.allocations.items() if m or c]


class PoolState:
    """Active claims (in arrival order), device totals and quotas as last committed.

    Single lookups need no lock (dict reads are atomic); a read that combines several structures
    (claims and device totals) takes `lock` so that it sees one commit's result, never half of one.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.generation = -1  # the store_generation value this state reflects; -1: never loaded
        self.claims: dict[str, Claim] = {}
        self.pending: dict[str, Claim] = {}
        self.preempting: dict[str, Claim] = {}
        self.allocations: dict[str, tuple[int, int]] = {}  # present devices: (memory, compute) bound
        self.quotas: dict[str, Quota] = {}

    @classmethod
    def of(
        cls,
        generation: int,
        claims: Iterable[Claim],
        allocations: dict[str, tuple[int, int]],
        quotas: dict[str, Quota],
    ) -> PoolState:
        """A state from what the database holds (claims in arrival order)."""
        state = cls()
        state.generation = generation
        for claim in claims:
            state._put(claim)
        state.allocations = dict(allocations)
        state.quotas = dict(quotas)
        return state

    def install(self, other: PoolState) -> bool:
        """Replace everything with a freshly loaded state, unless this one is as new already (a
        reload racing with a commit must never take the state back). True if installed."""
        with self.lock:
            if other.generation <= self.generation and self.generation >= 0:
                return False
            self.generation = other.generation
            self.claims, self.pending, self.preempting = other.claims, other.pending, other.preempting
            self.allocations, self.quotas = other.allocations, other.quotas
            return True

    def apply(self, changes: Changes, generation: int | None) -> None:
        """What a commit changed. `generation` is the counter value that commit wrote (None for a
        commit that did not bump it): the changes are applied only on top of the state just before
        it; a state already at or past it (reloaded meanwhile) includes them."""
        with self.lock:
            if generation is not None:
                if self.generation >= generation:
                    return
                if self.generation != generation - 1:
                    self.generation = -1  # a gap: only a reload can make this state whole again
                    return
                self.generation = generation
            for claim in changes.claims.values():
                self._put(claim)
            for uuid, (memory, compute) in changes.allocations.items():
                held = self.allocations.get(uuid)
                if held is not None:
                    self.allocations[uuid] = (held[0] + memory, held[1] + compute)
            for tenant, quota in changes.quotas.items():
                if quota is None:
                    self.quotas.pop(tenant, None)
                else:
                    self.quotas[tenant] = quota

    def _put(self, claim: Claim) -> None:
        if not claim.state.is_active:
            self.claims.pop(claim.id, None)
            self.pending.pop(claim.id, None)
            self.preempting.pop(claim.id, None)
            return
        self.claims[claim.id] = claim
        if claim.state == ClaimState.PENDING:
            self.pending[claim.id] = claim
        else:
            self.pending.pop(claim.id, None)
        if claim.preempting:
            self.preempting[claim.id] = claim
        else:
            self.preempting.pop(claim.id, None)
