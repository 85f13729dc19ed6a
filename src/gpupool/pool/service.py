"""The pool service: accept claim -> store -> place -> bind (all or nothing); release; recovery.

Every state change goes through the store, which commits it before the service returns. Decisions
are made on the pool's `LiveCluster` (the scheduler's cache, kept current by the store's commits)
under a lock that covers only the decision: a placement is *assumed* there while its transaction
commits, so the next decision never takes the same room and many claims commit together. Across
processes the store's guarded bind transaction keeps the no-over-commit invariant, and a lost race
just leaves the claim pending for the next pass.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gpupool.devices.base import DeviceBackend
from gpupool.errors import CapacityError, Conflict, Forbidden, NotFound
from gpupool.model import Binding, Claim, ClaimSpec, ClaimState, Device, DeviceTelemetry, Event, Tenant
from gpupool.model.idempotency import IdempotencyKey
from gpupool.pool import feasibility, preemption, quota
from gpupool.pool.fairshare import fair_order
from gpupool.pool.observer import NullObserver, PoolObserver
from gpupool.scheduler import (
    DeviceLoad,
    LiveCluster,
    NodeVerdict,
    PlacementResult,
    Placer,
    loads_on,
    with_bindings,
)
from gpupool.store import Store
from gpupool.store.runtime import RuntimeRecords
from gpupool.store.state import Changes

log = logging.getLogger("gpupool.pool")

DEFAULT_PREEMPT_GRACE_S = 10.0
"""Seconds a preempted claim's workload gets between SIGTERM and SIGKILL (`serve --preempt-grace`)."""
REMEMBERED_SHAPES = 4096
"""Claim shapes whose feasibility on the current inventory is remembered."""
OWNER_SLACK_S = 2.0
"""Extra seconds the backstop leaves a preempted claim whose workload is still recorded as live:
its owner SIGKILLs it at the deadline and releases it; the pool ends it only if the owner does not."""


LoadAnnotator = Callable[[list[DeviceLoad], ClaimSpec | None], list[DeviceLoad]]
"""Adds what a front door knows of each device (the `vms` adapter: VM traits) to the loads the
placer sees, for a claim spec (None: a scheduling pass over the queue)."""


@dataclass(frozen=True)
class _Plan:
    """What `create_claim` decided under the scheduling lock."""

    live: LiveCluster
    bindings: tuple[Binding, ...]
    bind_now: bool
    reason: str  # why it queues, when it does


@dataclass(frozen=True)
class DeviceView:
    """A device with what is bound to it and what it is doing, for the API and dashboards."""

    device: Device
    allocated_memory_bytes: int
    allocated_compute_percent: int
    telemetry: DeviceTelemetry | None
    claim_ids: tuple[str, ...]
    claim_tenants: tuple[str, ...]  # the owner of each claim in `claim_ids`, in that order


class PoolService:
    def __init__(
        self,
        store: Store,
        backend: DeviceBackend,
        placer: Placer,
        preempt_grace_s: float = DEFAULT_PREEMPT_GRACE_S,
        fixed_inventory: bool = True,
    ) -> None:
        self.store = store
        self.backend = backend
        self.placer = placer
        self.preempt_grace_s = preempt_grace_s
        # True: the devices now are all the pool will have, so a claim no node could ever hold is
        # refused. False (Ray cluster mode, nodes join later): such a claim waits, and says why.
        self.fixed_inventory = fixed_inventory
        self._devices: list[Device] = []
        self.inventory_version = 0  # moves whenever the device list is re-read (caches key on it)
        self._schedulable: list[Device] = []  # without MIG-mode parents: only their instances go out
        self._own_nodes: set[str] = set()  # nodes this process's backend ever showed
        self._schedule_lock = threading.Lock()
        self.observer: PoolObserver = NullObserver()  # metrics plug in here (api layer)
        self.load_annotator: LoadAnnotator | None = None  # VM traits plug in here (vms adapter)
        self._fits: dict[tuple[str | None, int | None, int], feasibility.Unfit | None] = {}
        self._live: LiveCluster | None = None
        # Devices whose committed totals changed since the live cluster last looked (None: all),
        # noted by the store's writer thread; and placements whose commit is over, to forget.
        self._changed: set[str] | None = None
        self._changed_lock = threading.Lock()
        self._settled: deque[tuple[LiveCluster, tuple[Binding, ...]]] = deque()
        store.subscribe(self._note_commit)
        # Scheduling passes asked for and done (see `schedule`): one runs at a time, shared.
        self._pass_turn = threading.Condition()
        self._pass_running = False
        self._passes_asked = self._passes_done = self._last_pass_bound = 0

    # --------------------------------------------------------------- lifecycle
    def start(self) -> list[Claim]:
        """Load the inventory, reconcile it with the store, bind what now fits.

        Returns the claims whose bindings point at devices that no longer exist; they are
        marked (never silently dropped) and reported in the event log.
        """
        affected = self.refresh_devices()
        self.schedule()
        return affected

    def refresh_devices(self, lost_nodes: Sequence[str] = ()) -> list[Claim]:
        """Re-read the inventory (nodes may have joined or left since); flag bindings on vanished
        devices as missing and return their claims.

        Only nodes this backend has shown (or `lost_nodes`) are judged: a replica sharing the store
        never marks another host's devices gone.
        """
        self._devices = sorted(self.backend.devices(), key=lambda d: (d.node, d.index))
        self.inventory_version += 1
        self._schedulable = [d for d in self._devices if d.schedulable]
        self._fits = {}
        self._own_nodes |= {d.node for d in self._devices} | set(lost_nodes)
        self._live = None  # rebuilt for the new inventory at the next decision
        vanished = self.store.sync_devices(self._devices, nodes=self._own_nodes)
        affected = self.store.mark_missing_bindings([d.uuid for d in vanished])
        for claim in affected:
            log.warning("claim %s is bound to a device that is gone; marked missing", claim.id)
        return affected

    def node_lost(self, node: str, reason: str, actor: str = "cluster") -> list[Claim]:
        """A node died: its claims become `lost` (with an event), its devices leave the pool and
        waiting claims are rescheduled on what remains. Returns the lost claims."""
        uuids = {d.uuid for d in self._devices if d.node == node}
        lost = []
        for claim in self.store.list_claims(states=[ClaimState.BOUND], limit=1_000_000):
            if any(b.device_uuid in uuids for b in claim.bindings):
                lost.append(self.store.end_claim(claim.id, ClaimState.LOST, actor=actor, reason=reason))
        details = {"node": node, "reason": reason, "claims": len(lost)}
        self.store.add_event(actor, "node.lost", details=details)
        self.refresh_devices(lost_nodes=[node])
        self.schedule()
        return lost

    @property
    def devices(self) -> list[Device]:
        return list(self._devices)

    @property
    def schedulable_devices(self) -> list[Device]:
        """The devices claims can be bound to: every device but a GPU in MIG mode."""
        return list(self._schedulable)

    # ------------------------------------------------------------------ claims
    def create_claim(
        self,
        tenant: Tenant,
        spec: ClaimSpec,
        lease_ttl_s: float | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> Claim:
        """Record a claim; bind it in the same transaction when it fits now and nobody waits ahead.

        With `lease_ttl_s` the claim's lease is taken in that transaction too (see `Store.add_claim`).
        With `idempotency`, a retry of a request already recorded returns that claim as it is now.
        A claim no node of a fixed inventory could ever hold is refused (Conflict: it is well-formed,
        the pool cannot hold it) instead.
        """
        if idempotency is not None:
            replayed = self.store.claim_for_key(tenant.name, idempotency)
            if replayed is not None:
                return replayed
        unfit = self._never_fits(spec)
        with self._schedule_lock:
            plan = self._plan(tenant, spec, unfit)
        if plan.bind_now:
            try:
                return self.store.add_claim(
                    tenant.name,
                    spec,
                    "",
                    tenant.name,
                    placement=plan.bindings,
                    lease_ttl_s=lease_ttl_s,
                    idempotency=idempotency,
                )
            except CapacityError:
                pass  # another process took the room meanwhile: queue it like any other
            finally:
                self._settled.append((plan.live, plan.bindings))  # committed or refused: not assumed
        return self._queue_claim(tenant, spec, plan, lease_ttl_s, idempotency)

    async def create_claim_async(
        self,
        tenant: Tenant,
        spec: ClaimSpec,
        lease_ttl_s: float | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> Claim:
        """`create_claim` for an event loop: the decision is made on the loop (it is short) and the
        commit is awaited without holding a thread. While a scheduling pass holds the pool (it may
        wait for several commits), the whole claim runs in a worker thread instead."""
        if idempotency is not None:  # the key is looked up first: a retry-safe claim takes a thread
            return await asyncio.to_thread(self.create_claim, tenant, spec, lease_ttl_s, idempotency)
        unfit = self._never_fits(spec)
        if not self._schedule_lock.acquire(blocking=False):
            return await asyncio.to_thread(self.create_claim, tenant, spec, lease_ttl_s)
        try:
            plan = self._plan(tenant, spec, unfit)
        finally:
            self._schedule_lock.release()
        if plan.bind_now:
            try:
                return await self.store.add_claim_async(
                    tenant.name, spec, "", tenant.name, placement=plan.bindings, lease_ttl_s=lease_ttl_s
                )
            except CapacityError:
                pass
            finally:
                self._settled.append((plan.live, plan.bindings))
        return await asyncio.to_thread(self._queue_claim, tenant, spec, plan, lease_ttl_s)

    def _never_fits(self, spec: ClaimSpec) -> feasibility.Unfit | None:
        """Why no node could ever hold the claim (None when one could); refused at once when the
        inventory is fixed. Remembered per claim shape until the inventory changes: the answer
        reads every device (8,000 on a 1,000x8 pool), the same for every claim of that shape."""
        key = (spec.model, spec.memory_bytes, spec.gpus)
        if key not in self._fits:
            if len(self._fits) >= REMEMBERED_SHAPES:
                self._fits.clear()
            self._fits[key] = feasibility.never_fits(spec, self._devices)
        unfit = self._fits[key]
        if unfit is not None and self.fixed_inventory:
            raise Conflict(unfit.refusal())
        return unfit

    def _plan(self, tenant: Tenant, spec: ClaimSpec, unfit: feasibility.Unfit | None = None) -> _Plan:
        """Where a new claim goes and whether it binds at once (caller holds the scheduling lock);
        a placement that will bind is assumed in the live cluster until its commit is settled."""
        live = self._current()
        ahead = self.store.count_pending(min_priority=spec.priority)
        started = time.perf_counter()
        result = self.placer.place(spec, self._placement_loads(spec, live))
        self.observer.on_decision(time.perf_counter() - started, result.ok)
        verdict = quota.admit(self.store, self._schedulable, tenant.name, spec)
        # While victims drain, room may be promised to a waiting claim: let the pass decide.
        draining = bool(self.store.view().preempting) if result.ok else False
        bind_now = result.ok and ahead == 0 and verdict.allowed and not draining
        if bind_now:
            live.assume(result.bindings)
        reason = result.reason if not result.ok else f"queued behind {ahead} earlier claim(s)"
        reason = unfit.waiting_reason() if unfit is not None else reason
        reason = verdict.reason or reason  # a quota holding the claim back says so first
        return _Plan(live, result.bindings, bind_now, reason)

    def _queue_claim(
        self,
        tenant: Tenant,
        spec: ClaimSpec,
        plan: _Plan,
        lease_ttl_s: float | None,
        idempotency: IdempotencyKey | None = None,
    ) -> Claim:
        """Record a claim that does not bind at once, and run a pass (it may bind or preempt)."""
        claim = self.store.add_claim(
            tenant.name, spec, plan.reason, tenant.name, lease_ttl_s=lease_ttl_s, idempotency=idempotency
        )
        self.schedule()
        return self.store.get_claim(claim.id)  # bound now, or with the pass's reason (may preempt)

    def claim_now(self, tenant: Tenant, spec: ClaimSpec, actor: str | None = None) -> Claim:
        """Bind a claim now or record nothing, for front doors that cannot wait in the queue (a VM
        attach). Conflict with the quota's or the scheduler's reason when it does not fit now."""
        with self._schedule_lock:
            verdict = quota.admit(self.store, self._schedulable, tenant.name, spec)
            if not verdict.allowed:
                raise Conflict(verdict.reason or "quota")
            started = time.perf_counter()
            result = self.placer.place(spec, self._placement_loads(spec))
            self.observer.on_decision(time.perf_counter() - started, result.ok)
            if not result.ok:
                raise Conflict(result.reason)
            return self.store.add_claim(
                tenant.name, spec, "", actor or tenant.name, placement=result.bindings
            )

    def get_claim(self, tenant: Tenant, claim_id: str) -> Claim:
        claim = self.store.get_claim(claim_id)
        if not tenant.is_admin and claim.tenant != tenant.name:
            # Same answer as for an unknown claim: do not reveal other tenants' claim ids.
            raise NotFound(f"claim {claim_id} not found")
        return claim

    def list_claims(
        self, tenant: Tenant, states: Sequence[ClaimState] | None = None, id_prefix: str | None = None
    ) -> list[Claim]:
        owner = None if tenant.is_admin else tenant.name
        return self.store.list_claims(tenant=owner, states=states, id_prefix=id_prefix)

    def claims_page(
        self,
        tenant: Tenant,
        states: Sequence[ClaimState] | None,
        limit: int,
        before: int | None,
        id_prefix: str | None = None,
    ) -> tuple[list[Claim], int | None]:
        """A page of the claims `tenant` may see, newest first, and where the next page starts."""
        owner = None if tenant.is_admin else tenant.name
        return self.store.list_claims_page(
            tenant=owner, states=states, limit=limit, before_seq=before, id_prefix=id_prefix
        )

    def release(self, tenant: Tenant, claim_id: str, reason: str = "") -> Claim:
        owner = None if tenant.is_admin else tenant.name
        released = self.store.end_claim(
            claim_id, ClaimState.RELEASED, actor=tenant.name, reason=reason, owner=owner
        )
        self.schedule()
        return released

    async def release_async(self, tenant: Tenant, claim_id: str, reason: str = "") -> Claim:
        """`release` for an event loop: the commit is awaited; a pass runs in a worker thread only
        when a claim waits or drains."""
        owner = None if tenant.is_admin else tenant.name
        released = await self.store.end_claim_async(
            claim_id, ClaimState.RELEASED, actor=tenant.name, reason=reason, owner=owner
        )
        if self._pass_needed():
            await asyncio.to_thread(self.schedule)
        return released

    def queue(self) -> list[Claim]:
        """Pending claims in the order the scheduler tries them (fair share across tenants)."""
        gate = quota.QuotaGate.load(self.store, self._schedulable)
        return fair_order(self.store.pending_claims(), gate, self._schedulable)

    def queue_position(self, claim: Claim) -> int | None:
        """1-based position of a pending claim in the queue, None for others."""
        if claim.state != ClaimState.PENDING:
            return None
        for position, pending in enumerate(self.queue(), start=1):
            if pending.id == claim.id:
                return position
        return None

    def events(
        self, tenant: Tenant, claim_id: str | None = None, after_id: int = 0, limit: int = 200
    ) -> list[Event]:
        if claim_id is not None:
            self.get_claim(tenant, claim_id)  # ownership check
        owner = None if tenant.is_admin else tenant.name
        return self.store.list_events(tenant=owner, claim_id=claim_id, after_id=after_id, limit=limit)

    # --------------------------------------------------------------- placement
    def schedule(self) -> int:
        """One pass over the pending queue; binds every claim that fits now. Returns how many.

        Preempting claims past their deadline are ended first. An in-guarantee claim that does not
        fit waits for claims already draining, or marks new victims; either way the room it will
        take is reserved for the rest of the pass, and it goes first once its victims are gone.

        Callers that ask while a pass runs share the next one: it starts after they asked, so it
        sees what they changed, and N releases at once cost two passes, not N.
        """
        if not self._pass_needed():
            return 0  # nothing waits and nothing drains: the common case after a release
        with self._pass_turn:
            self._passes_asked += 1
            ticket = self._passes_asked
            while self._passes_done < ticket and self._pass_running:
                self._pass_turn.wait()
            if self._passes_done >= ticket:
                return self._last_pass_bound
            self._pass_running = True
            covers = self._passes_asked
        bound, finished = 0, False
        try:
            bound = self._pass()
            finished = True
        finally:
            with self._pass_turn:
                self._pass_running = False
                if finished:  # after a failure the next caller runs its own pass
                    self._passes_done, self._last_pass_bound = covers, bound
                self._pass_turn.notify_all()
        return bound

    def _pass(self) -> int:
        with self._schedule_lock:
            now = time.time()
            self.end_overdue_preemptions(now)
            pending = self.store.pending_claims()
            if not pending:
                return 0
            live = self._current()
            annotated = self.load_annotator is not None  # then placements see a list of annotated loads
            loads = self._placement_loads(None, live)
            drain = preemption.Drain.start(loads, self.store.preempting_claims())
            gate = quota.QuotaGate.load(self.store, self._schedulable)
            pending = fair_order(pending, gate, self._schedulable)
            # Claims that made others stop go first, so the room they freed is theirs.
            pending.sort(key=lambda c: not c.reason.startswith(preemption.WAIT_PREFIX))
            bound = 0
            for claim in pending:
                verdict = gate.verdict(claim.tenant, claim.spec)
                if not verdict.allowed:
                    self.store.set_pending_reason(claim.id, verdict.reason or "quota")
                    continue
                started = time.perf_counter()
                # Not an arrival: the claim was counted when it came (online policies learn once).
                result = self.placer.place(claim.spec, drain.guarded(loads), learn=False)
                self.observer.on_decision(time.perf_counter() - started, result.ok)
                if not result.ok and verdict.in_guarantee:
                    placement = self._wait_for_room(claim, drain, gate, now)
                    if placement is not None:
                        self.store.set_pending_reason(claim.id, drain.wait_reason(placement))
                        drain.reserve(placement)
                        gate.note_bound(claim.tenant, placement)  # it will hold this: quota says so
                        continue
                if not result.ok:
                    self.store.set_pending_reason(claim.id, self._unplaced_reason(claim.spec, result.reason))
                    continue
                live.assume(result.bindings)
                try:
                    self.store.bind_claim(claim.id, result.bindings)
                except (CapacityError, Conflict) as exc:
                    # Another process changed the pool under us: let the next pass retry.
                    log.info("bind of %s lost a race: %s", claim.id, exc)
                    self.observer.on_bind_failure(type(exc).__name__.lower())
                    lost_race = True
                except BaseException:
                    live.forget(result.bindings)
                    raise
                else:
                    lost_race = False
                live.forget(result.bindings)  # committed (the commit now counts it) or refused
                live = self._current()
                if not annotated:
                    loads = live  # it shows the commit already
                elif lost_race:
                    loads = self._placement_loads(None, live)  # re-read
                else:
                    loads = with_bindings(loads, result.bindings)
                if lost_race:
                    continue
                bound += 1
                gate.note_bound(claim.tenant, result.bindings)
                drain.bound(result.bindings)
            return bound

    def sync_and_schedule(self) -> int:
        """The periodic pass: first take in what other processes sharing the store committed (one
        small read; the state is reloaded only if they did), then schedule."""
        self.store.refresh()
        return self.schedule()

    # ------------------------------------------- placement chosen by another scheduler
    def assess_nodes(
        self, tenant: str, spec: ClaimSpec, nodes: Sequence[str], held: Sequence[Binding] = ()
    ) -> list[NodeVerdict]:
        """For a claim another scheduler places (Kubernetes): one verdict per node in `nodes`, in
        that order: does it fit there now, else why not, and the policy's score of the node.

        `held`: bindings not recorded yet that count as taken (the other scheduler's decisions
        still on their way to `claim_on_node`). A tenant's quota that holds the claim back, or
        room promised to a claim that waits for preempted claims to stop, fails every node with
        that reason. Nothing is recorded.
        """
        with self._schedule_lock:
            held_back = self._held_back(tenant, spec)
            if held_back:
                return [NodeVerdict(node, False, held_back) for node in nodes]
            loads = loads_on(with_bindings(self._placement_loads(), held), set(nodes))
            found = {v.node: v for v in self.placer.assess(spec, loads)}
        missing = "no gpupool device on this node"
        return [found.get(node) or NodeVerdict(node, False, missing) for node in nodes]

    def plan_on_node(self, spec: ClaimSpec, node: str, held: Sequence[Binding] = ()) -> PlacementResult:
        """The bindings `claim_on_node` would make on `node` now (quota aside); nothing recorded."""
        with self._schedule_lock:
            loads = loads_on(with_bindings(self._placement_loads(spec), held), {node})
            return self.placer.place(spec, loads, learn=False)

    def claim_on_node(
        self,
        tenant: Tenant,
        spec: ClaimSpec,
        node: str,
        actor: str | None = None,
        held: Sequence[Binding] = (),
    ) -> Claim:
        """Create a claim bound on `node` now (the policy picks the devices there), all or nothing.

        CapacityError, with the reason and nothing recorded, when it does not fit on that node now
        (with `held` taken, as in `assess_nodes`) or its quota or promised room holds it back.
        """
        with self._schedule_lock:
            held_back = self._held_back(tenant.name, spec)
            if held_back:
                raise CapacityError(held_back)
            started = time.perf_counter()
            loads = loads_on(with_bindings(self._placement_loads(spec), held), {node})
            result = self.placer.place(spec, loads)
            self.observer.on_decision(time.perf_counter() - started, result.ok)
            if not result.ok:
                raise CapacityError(f"{node}: {result.reason}")
            bindings = result.bindings
            return self.store.add_claim(tenant.name, spec, "", actor or tenant.name, placement=bindings)

    def _held_back(self, tenant: str, spec: ClaimSpec) -> str:
        """Why a claim may not bind now whatever the node ('' when it may): its tenant's quota, or
        room promised to claims that wait for preempted claims to stop."""
        verdict = quota.admit(self.store, self._devices, tenant, spec)
        if not verdict.allowed:
            return verdict.reason or "quota"
        if self.store.preempting_claims() and any(
            c.reason.startswith(preemption.WAIT_PREFIX) for c in self.store.pending_claims()
        ):
            return "waiting: room is promised to a claim whose preempted claims are stopping"
        return ""

    def _unplaced_reason(self, spec: ClaimSpec, reason: str) -> str:
        """The placer's reason, or, where no node could hold the claim yet, that it waits for one."""
        unfit = None if self.fixed_inventory else feasibility.never_fits(spec, self._devices)
        return reason if unfit is None else unfit.waiting_reason()

    def _wait_for_room(
        self, claim: Claim, drain: preemption.Drain, gate: quota.QuotaGate, now: float
    ) -> Sequence[Binding] | None:
        """Where an in-guarantee claim will go once draining claims (old or newly marked victims)
        have stopped; None when even preemption cannot make room."""
        result = self.placer.place(claim.spec, drain.future, learn=False)
        if not result.ok:
            deadline = now + self.preempt_grace_s
            if not preemption.make_room(self.store, self.placer, claim, drain, gate, self.observer, deadline):
                return None
            result = self.placer.place(claim.spec, drain.future, learn=False)
        return result.bindings if result.ok else None

    def preempt(self, tenant: Tenant, claim_id: str, reason: str = "preempted by the admin") -> Claim:
        """Admin: start the grace period of a bound claim (same path as the scheduler's victims)."""
        self.require_admin(tenant)
        claim = self.get_claim(tenant, claim_id)
        if claim.state != ClaimState.BOUND or claim.preempting:
            what = "already preempting" if claim.preempting else claim.state.value
            raise Conflict(f"claim {claim_id} is {what}, only bound claims can be preempted")
        deadline = time.time() + self.preempt_grace_s
        if preemption.preempt(self.store, [claim], reason, deadline, actor=tenant.name):
            self.observer.on_preemption(claim.tenant, 1)
        self.schedule()  # a zero grace ends it at once
        return self.store.get_claim(claim_id)

    def end_overdue_preemptions(self, now: float | None = None) -> list[Claim]:
        """Backstop: end preempting claims whose grace deadline has passed (no workload, or an owner
        that did not stop it). A claim with a live workload gets `OWNER_SLACK_S` more, for its owner
        to SIGKILL and release it first."""
        now = time.time() if now is None else now
        overdue = [c for c in self.store.preempting_claims() if (c.preempt_deadline or 0.0) <= now]
        if not overdue:
            return []
        workloads = RuntimeRecords(self.store).list_workloads(live_only=True, limit=1_000_000)
        live = {w.claim_id for w in workloads}
        ended = []
        for claim in overdue:
            if claim.id in live and now < (claim.preempt_deadline or 0.0) + OWNER_SLACK_S:
                continue
            ended.append(
                self.store.end_claim(
                    claim.id, ClaimState.PREEMPTED, actor="scheduler", reason="grace period over"
                )
            )
        return ended

    def _pass_needed(self) -> bool:
        state = self.store.view()
        return bool(state.pending or state.preempting)

    # ------------------------------------------------------------ live cluster
    def _note_commit(self, changes: Changes | None) -> None:
        """Store listener (writer thread): which devices' committed totals changed."""
        with self._changed_lock:
            if changes is None:
                self._changed = None
            elif self._changed is not None:
                self._changed.update(changes.allocations)

    def _current(self) -> LiveCluster:
        """The live cluster, brought up to date with every commit so far (caller holds the lock)."""
        state = self.store.view()
        with self._changed_lock:
            changed, self._changed = self._changed, set()
        if self._live is None:
            interner = getattr(self.placer, "interner", None)
            self._live = LiveCluster(
                self._schedulable, lambda uuid: state.allocations.get(uuid, (0, 0)), interner
            )
            changed = set()
        live = self._live
        while self._settled:
            assumed_on, bindings = self._settled.popleft()
            if assumed_on is live:  # a rebuilt cluster never counted it
                live.forget(bindings)
        live.refresh(changed)
        return live

    def _placement_loads(
        self, spec: ClaimSpec | None = None, live: LiveCluster | None = None
    ) -> Sequence[DeviceLoad]:
        """What a placement sees (caller holds the lock): the live cluster itself, or, when a front
        door annotates loads (VM traits), a list of them made from it for this claim."""
        live = live if live is not None else self._current()
        if self.load_annotator is None:
            return live
        return self.load_annotator(list(live), spec)

    # ----------------------------------------------------------------- devices
    def device_views(self) -> list[DeviceView]:
        state = self.store.view()
        with state.lock:  # totals and bindings of the same commit
            allocations = dict(state.allocations)
            bound = [c for c in state.claims.values() if c.state == ClaimState.BOUND]
        telemetry = self._telemetry(allocations)
        claims_on: dict[str, list[Claim]] = {}
        for claim in reversed(bound):  # newest first, as the store lists them
            for binding in claim.bindings:
                claims_on.setdefault(binding.device_uuid, []).append(claim)
        return [
            DeviceView(
                device=device,
                allocated_memory_bytes=allocations.get(device.uuid, (0, 0))[0],
                allocated_compute_percent=allocations.get(device.uuid, (0, 0))[1],
                telemetry=telemetry.get(device.uuid),
                claim_ids=tuple(c.id for c in claims_on.get(device.uuid, ())),
                claim_tenants=tuple(c.tenant for c in claims_on.get(device.uuid, ())),
            )
            for device in self._devices
        ]

    def sample_telemetry(self) -> dict[str, DeviceTelemetry]:
        """A telemetry sample of every device, by UUID."""
        state = self.store.view()
        with state.lock:
            allocations = dict(state.allocations)
        return self._telemetry(allocations)

    def _telemetry(self, allocations: dict[str, tuple[int, int]]) -> dict[str, DeviceTelemetry]:
        # Simulated devices make their utilization follow what is bound; real ones ignore this.
        self.backend.note_allocations(allocations)
        return {t.uuid: t for t in self.backend.telemetry()}

    # ----------------------------------------------------------------- tenants
    def delete_tenant(self, name: str, actor: str) -> list[Claim]:
        """Delete a tenant with its token and release its active claims (one transaction); the
        freed capacity goes to waiting claims at once."""
        released = self.store.delete_tenant(name, actor=actor)
        self.schedule()
        return released

    def require_admin(self, tenant: Tenant) -> None:
        if not tenant.is_admin:
            raise Forbidden("only the admin may do this")
