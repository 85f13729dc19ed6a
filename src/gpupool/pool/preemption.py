"""Preemption: when a claim within its tenant's guarantee cannot be placed, evict the cheapest set
of preemptible claims of tenants above their guarantee, and bind it.

Cheapest: lowest priority first, then the least run time lost (most recently bound). Victims are
added in that order until the claim fits, then any victim the placement does not need is spared.
A victim's claim is marked `preempted` with the reason at once (its capacity is free); a node
agent running its workload sees the claim end and stops it: SIGTERM, then SIGKILL after its
grace period. Every preemption is in the audit trail.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from gpupool.model import Claim, ClaimSpec, ClaimState
from gpupool.pool.observer import PoolObserver
from gpupool.pool.quota import QuotaGate
from gpupool.scheduler import DeviceLoad, PlacementResult, Placer
from gpupool.store import Store


def victim_order(bound: Sequence[Claim], now: float) -> list[Claim]:
    """Preemptible bound claims, cheapest to evict first."""
    preemptible = [c for c in bound if c.state == ClaimState.BOUND and c.spec.preemptible]
    return sorted(preemptible, key=lambda c: (c.spec.priority, now - (c.bound_at or now), c.id))


def without(loads: Sequence[DeviceLoad], victims: Sequence[Claim]) -> list[DeviceLoad]:
    """The loads as they would be with the victims' bindings freed."""
    freed: dict[str, tuple[int, int]] = {}
    for victim in victims:
        for b in victim.bindings:
            memory, compute = freed.get(b.device_uuid, (0, 0))
            freed[b.device_uuid] = (memory + b.memory_bytes, compute + b.compute_percent)
    return [
        DeviceLoad(
            device=load.device,
            allocated_memory_bytes=load.allocated_memory_bytes - freed[load.device.uuid][0],
            allocated_compute_percent=load.allocated_compute_percent - freed[load.device.uuid][1],
            utilization_percent=load.utilization_percent,
        )
        if load.device.uuid in freed
        else load
        for load in loads
    ]


def plan(
    spec: ClaimSpec,
    tenant: str,
    loads: Sequence[DeviceLoad],
    bound: Sequence[Claim],
    gate: QuotaGate,
    placer: Placer,
    now: float | None = None,
) -> tuple[list[Claim], PlacementResult] | None:
    """The victims to evict and the placement they make room for, or None if no set helps."""
    now = time.time() if now is None else now
    chosen: list[Claim] = []
    result: PlacementResult | None = None
    for victim in victim_order(bound, now):
        if victim.tenant == tenant or not gate.borrowing(victim):
            continue
        chosen.append(victim)
        gate.note_freed(victim)  # the tenant's next claim is judged on what it would still hold
        trial = placer.place(spec, without(loads, chosen))
        if trial.ok:
            result = trial
            break
    for victim in chosen:  # undo the trial accounting; the caller notes what really happens
        gate.note_bound(victim.tenant, victim.bindings)
    if result is None:
        return None
    for victim in reversed(chosen[:-1]):  # spare whoever the placement does not need
        fewer = [c for c in chosen if c is not victim]
        trial = placer.place(spec, without(loads, fewer))
        if trial.ok:
            chosen, result = fewer, trial
    return chosen, result


def preempt(store: Store, victims: Sequence[Claim], reason: str, actor: str = "scheduler") -> list[Claim]:
    """Mark the victims preempted with the reason; returns those that were still active."""
    ended = []
    for victim in victims:
        claim = store.end_claim(victim.id, ClaimState.PREEMPTED, actor=actor, reason=reason)
        if claim.state == ClaimState.PREEMPTED and claim.reason == reason:
            ended.append(claim)
    return ended


def make_room(
    store: Store,
    placer: Placer,
    claim: Claim,
    loads: Sequence[DeviceLoad],
    gate: QuotaGate,
    observer: PoolObserver,
) -> list[Claim]:
    """Preempt for an in-guarantee pending claim that does not fit; returns the claims evicted."""
    bound = store.list_claims(states=[ClaimState.BOUND], limit=1_000_000)
    found = plan(claim.spec, claim.tenant, loads, bound, gate, placer)
    if found is None:
        return []
    victims, _placement = found
    reason = f"preempted for {claim.id} of {claim.tenant}, which is within its guarantee"
    ended = preempt(store, victims, reason)
    for victim in ended:
        gate.note_freed(victim)
        observer.on_preemption(victim.tenant, 1)
    if ended:
        details = {"victims": [v.id for v in ended], "tenants": sorted({v.tenant for v in ended})}
        store.add_event("scheduler", "claim.preempting", claim.id, claim.tenant, details)
    return ended
