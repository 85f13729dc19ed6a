"""Preemption: when a claim within its tenant's guarantee cannot be placed, evict the cheapest set
of preemptible claims of tenants above their guarantee, and bind it once they have stopped.

Cheapest: lowest priority first, then the least run time lost (most recently bound). Victims are
added in that order until the claim fits, then any victim the placement does not need is spared.
A victim is not freed at once: it stays bound (its devices are still in use) and gets a grace
deadline (`claim.preempting` event). Its owner stops the workload: `gpupool run` or the node
agent sends SIGTERM, then SIGKILL at the deadline, and releases; the claim then ends as
`preempted`. The pool's periodic pass ends any victim still bound after its deadline (see
`PoolService.end_overdue_preemptions`). Meanwhile the waiting claim stays pending, the room it
will take is reserved for it (`Drain`), and nobody is preempted twice for the same need.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from gpupool.model import Binding, Claim, ClaimSpec, ClaimState
from gpupool.pool.observer import PoolObserver
from gpupool.pool.quota import QuotaGate
from gpupool.scheduler import DeviceLoad, PlacementResult, Placer, with_bindings
from gpupool.store import Store


def victim_order(bound: Sequence[Claim], now: float) -> list[Claim]:
    """Preemptible bound claims not already preempting, cheapest to evict first."""
    preemptible = [
        c for c in bound if c.state == ClaimState.BOUND and c.spec.preemptible and not c.preempting
    ]
    return sorted(preemptible, key=lambda c: (c.spec.priority, now - (c.bound_at or now), c.id))


def without(loads: Sequence[DeviceLoad], victims: Sequence[Claim]) -> list[DeviceLoad]:
    """The loads as they would be with the victims' bindings freed."""
    return with_bindings(loads, [b for victim in victims for b in victim.bindings], sign=-1)


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
        trial = placer.place(spec, without(loads, chosen), learn=False)
        if trial.ok:
            result = trial
            break
    for victim in chosen:  # undo the trial accounting; the caller notes what really happens
        gate.note_bound(victim.tenant, victim.bindings)
    if result is None:
        return None
    for victim in reversed(chosen[:-1]):  # spare whoever the placement does not need
        fewer = [c for c in chosen if c is not victim]
        trial = placer.place(spec, without(loads, fewer), learn=False)
        if trial.ok:
            chosen, result = fewer, trial
    return chosen, result


WAIT_PREFIX = "waiting for "
"""A pending claim whose reason starts with this waits for its victims to stop."""


def preempt(
    store: Store,
    victims: Sequence[Claim],
    reason: str,
    deadline: float,
    actor: str = "scheduler",
    for_claim: str | None = None,
) -> list[Claim]:
    """Start the grace period of the victims (bound until `deadline`); returns those that were
    bound and not already preempting."""
    details = {"for_claim": for_claim} if for_claim else {}
    marked = []
    for victim in victims:
        claim = store.mark_preempting(victim.id, deadline, reason, actor=actor, **details)
        if claim is not None:
            marked.append(claim)
    return marked


@dataclass
class Drain:
    """Capacity held by preempting claims during one scheduling pass.

    `future` is the loads as they will be once every draining claim has stopped, minus the room
    already reserved for claims waiting on them. A claim binding now must fit both now and in the
    future (`guarded`), so it never takes room a waiting in-guarantee claim was promised. With
    nothing draining and nothing reserved, the future is the present (`base`, which the pool keeps
    current as it binds), and no copy of the pool's loads is made.
    """

    claims: list[Claim]
    base: Sequence[DeviceLoad]
    reserved: bool = False
    waiting_on: dict[str, list[Claim]] = field(default_factory=dict)
    _future: list[DeviceLoad] | None = None

    @classmethod
    def start(cls, loads: Sequence[DeviceLoad], draining: Sequence[Claim]) -> Drain:
        drain = cls(list(draining), loads)
        if draining:
            drain._future = without(loads, draining)
        return drain

    @property
    def future(self) -> Sequence[DeviceLoad]:
        return self.base if self._future is None else self._future

    def add(self, victims: Sequence[Claim]) -> None:
        self.claims.extend(victims)
        self._future = without(self.future, victims)

    def reserve(self, bindings: Sequence[Binding]) -> None:
        self._future = with_bindings(self.future, bindings)
        self.reserved = True

    def guarded(self, loads: Sequence[DeviceLoad]) -> Sequence[DeviceLoad]:
        """The loads a claim binding now is placed on: per device the larger of now and future."""
        if not self.reserved:
            return loads
        future = {load.device.uuid: load for load in self.future}
        return [
            replace(
                load,
                allocated_memory_bytes=max(
                    load.allocated_memory_bytes, future[load.device.uuid].allocated_memory_bytes
                ),
                allocated_compute_percent=max(
                    load.allocated_compute_percent, future[load.device.uuid].allocated_compute_percent
                ),
            )
            if load.device.uuid in future
            else load
            for load in loads
        ]

    def bound(self, bindings: Sequence[Binding]) -> None:
        """A claim bound now: it holds that room in the future too (`base` already shows it)."""
        if self._future is not None:
            self._future = with_bindings(self._future, bindings)

    def wait_reason(self, placement: Sequence[Binding]) -> str:
        """Why a claim that will fit once victims stop still waits, naming them and the deadline."""
        devices = {b.device_uuid for b in placement}
        blocking = [c for c in self.claims if any(b.device_uuid in devices for b in c.bindings)]
        blocking = blocking or self.claims
        deadline = max((c.preempt_deadline or 0.0) for c in blocking)
        until = time.strftime("%H:%M:%S", time.localtime(deadline))
        return f"{WAIT_PREFIX}{len(blocking)} preempted claim(s) to stop (grace until {until})"


def make_room(
    store: Store,
    placer: Placer,
    claim: Claim,
    drain: Drain,
    gate: QuotaGate,
    observer: PoolObserver,
    deadline: float,
) -> list[Claim]:
    """Mark victims preempting for an in-guarantee pending claim that does not fit even once the
    claims already draining have stopped; returns the new victims (also added to `drain`)."""
    bound = store.list_claims(states=[ClaimState.BOUND], limit=1_000_000)
    for draining in drain.claims:  # judge borrowing on what tenants will still hold
        gate.note_freed(draining)
    try:
        found = plan(claim.spec, claim.tenant, drain.future, bound, gate, placer)
    finally:
        for draining in drain.claims:
            gate.note_bound(draining.tenant, draining.bindings)
    if found is None:
        return []
    victims, _placement = found
    reason = f"preempted for {claim.id} of {claim.tenant}, which is within its guarantee"
    marked = preempt(store, victims, reason, deadline, for_claim=claim.id)
    for victim in marked:
        observer.on_preemption(victim.tenant, 1)
    if marked:
        details = {
            "victims": [v.id for v in marked],
            "tenants": sorted({v.tenant for v in marked}),
            "deadline": deadline,
        }
        store.add_event("scheduler", "claim.preempts", claim.id, claim.tenant, details)
        drain.add(marked)
    return marked
