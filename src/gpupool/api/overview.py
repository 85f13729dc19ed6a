"""Build the dashboard snapshot (`Overview`) for one viewer: the admin sees everything, a tenant
sees its own claims and events, and other tenants' shares of a device only as `other`."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gpupool.api.convert import claim_fields, event_public
from gpupool.api.device_cards import DeviceCards, ViewerCards
from gpupool.api.live import LiveHub
from gpupool.model import Claim, ClaimState, Tenant
from gpupool.model.overview import Overview, TenantRow
from gpupool.pool import PoolService
from gpupool.pool.fairshare import fair_order
from gpupool.pool.quota import QuotaGate
from gpupool.pool.usage import tenant_usage
from gpupool.store.quotas import QuotaRecords

EVENTS_SHOWN = 60
CLAIMS_SHOWN = 200
"""At most this many bound claims and this many queue entries go into one overview (the counts say
how many there are): a pool with thousands of claims must not make every snapshot megabytes."""


class ClaimDumps:
    """Claims as `ClaimPublic` JSON, each kept while the claim (an immutable object, replaced on
    every change) and its queue position stay the same: a stream's next snapshot re-serialises
    only the claims that changed, and its differ finds the unchanged ones by identity."""

    def __init__(self) -> None:
        self._dumps: dict[str, tuple[Claim, int | None, dict[str, Any]]] = {}
        self._next: dict[str, tuple[Claim, int | None, dict[str, Any]]] = {}

    def __call__(self, claim: Claim, position: int | None = None) -> dict[str, Any]:
        kept = self._dumps.get(claim.id)
        if kept is None or kept[0] is not claim or kept[1] != position:
            kept = (claim, position, claim_fields(claim, position))  # ClaimPublic's JSON form
        self._next[claim.id] = kept
        return kept[2]

    def turn(self) -> None:
        """Forget the claims the last snapshot did not show."""
        self._dumps, self._next = self._next, {}


@dataclass
class ViewerMemo:
    """What one stream keeps from one snapshot to the next (a fresh one serves a single call)."""

    cards: ViewerCards
    claims: ClaimDumps = field(default_factory=ClaimDumps)

    @classmethod
    def of(cls, viewer: Tenant) -> ViewerMemo:
        return cls(ViewerCards(viewer))


def build_overview(
    pool: PoolService,
    viewer: Tenant,
    hub: LiveHub | None = None,
    with_history: bool = False,
    memo: ViewerMemo | None = None,
) -> dict[str, Any]:
    """One consistent-enough snapshot (a few reads, no transaction) for `viewer`, as an `Overview`
    in JSON form. The device cards are the hub's shared ones (telemetry as of its last sample);
    `memo`, a stream's own, keeps masked cards and serialised claims from one snapshot to the next."""
    memo = memo or ViewerMemo.of(viewer)
    active = pool.store.list_claims(states=[ClaimState.PENDING, ClaimState.BOUND], limit=1_000_000)
    queue = queue_order(pool, active)
    positions = {claim.id: position for position, claim in enumerate(queue, start=1)}

    def visible(claim: Claim) -> bool:
        return viewer.is_admin or claim.tenant == viewer.name

    owner = None if viewer.is_admin else viewer.name
    events = pool.store.list_events(tenant=owner, limit=EVENTS_SHOWN)
    mine_bound = [c for c in active if c.state == ClaimState.BOUND and visible(c)]
    data = Overview(
        generated_at=time.time(),
        viewer=viewer.name,
        admin=viewer.is_admin,
        backend=pool.backend.name,
        policy=pool.placer.name,
        devices=[],
        claims=[],
        claims_total=len(mine_bound),
        queue=[],
        queue_length=len(queue),
        tenants=tenant_rows(pool, active, viewer),
        events=[event_public(e) for e in events],
        sample_id=hub.sample_id if hub else 0,
        history_interval_s=hub.sample_interval_s if hub else 2.0,
    ).model_dump(mode="json")
    # Cards, claims and history go in as they are: validating 8,000 cards would cost more than
    # the rest of the snapshot (their shapes are `Overview`'s, tested).
    data["claims"] = [memo.claims(c) for c in mine_bound[:CLAIMS_SHOWN]]
    shown = [c for c in queue if visible(c)][:CLAIMS_SHOWN]
    data["queue"] = [memo.claims(c, positions[c.id]) for c in shown]
    memo.claims.turn()
    shared = hub.device_cards() if hub else DeviceCards(pool).cards(pool.sample_telemetry(), None)
    data["devices"] = memo.cards(shared)
    if hub and with_history:
        data["history"] = hub.history_lists()
    return data


def queue_order(pool: PoolService, active: list[Claim]) -> list[Claim]:
    """Pending claims in the order the pool will try them (fair share across tenants)."""
    gate = QuotaGate(
        QuotaRecords(pool.store).quotas(),
        tenant_usage(active, pool.schedulable_devices),
        pool.schedulable_devices,
    )
    pending = sorted((c for c in active if c.state == ClaimState.PENDING), key=lambda c: c.created_at)
    return fair_order(pending, gate, pool.schedulable_devices)


def tenant_rows(pool: PoolService, active: list[Claim], viewer: Tenant) -> list[TenantRow]:
    usage = tenant_usage(active, pool.schedulable_devices)
    quotas = QuotaRecords(pool.store).quotas()
    tenants = pool.store.list_tenants()
    # Colours by creation order: a new tenant takes the next slot and nobody's colour changes.
    slots = {t.name: slot for slot, t in enumerate(sorted(tenants, key=lambda t: (t.created_at, t.name)))}
    names = sorted({t.name for t in tenants} | set(usage))
    if not viewer.is_admin:
        names = [name for name in names if name == viewer.name]
    rows = []
    for name in names:
        entry = usage.get(name)
        quota = quotas.get(name)
        rows.append(
            TenantRow(
                name=name,
                guarantee_gpus=quota.guarantee_gpus if quota else None,
                limit_gpus=quota.limit_gpus if quota else None,
                guarantee_memory_bytes=quota.guarantee_memory_bytes if quota else None,
                limit_memory_bytes=quota.limit_memory_bytes if quota else None,
                allocated_gpus=round(entry.allocated_gpus, 4) if entry else 0.0,
                allocated_memory_bytes=entry.allocated_memory_bytes if entry else 0,
                allocated_compute_percent=entry.allocated_compute_percent if entry else 0,
                bound_claims=entry.bound_claims if entry else 0,
                pending_claims=entry.pending_claims if entry else 0,
                colour=slots.get(name, -1),
            )
        )
    return rows
