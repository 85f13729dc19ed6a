"""The live pool's adapter: DeviceLoads -> a `Cluster` snapshot, ClaimSpec -> `Request`, and back.

Live devices have memory (bytes) and compute (percent); compute maps to milli-GPU (percent x 10)
and memory is a per-GPU dimension. Nodes that mix GPU models are split into one row per model.

The pool keeps one `LiveCluster`: the snapshot built once and then changed device by device as
claims bind and end, so that a placement costs what the simulator's does, not a rebuild of the
whole pool (which grew with the pool: 8,000 devices made every claim pay for 8,000 rows).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import overload

import numpy as np
from numpy.typing import NDArray

from gpupool.errors import CapacityError
from gpupool.model import Binding, ClaimSpec, Device, format_size
from gpupool.model.vm import DEVICES_LABEL, PASSTHROUGH_LABEL, VGPU_PROFILE_LABEL
from gpupool.scheduler.cluster import Cluster, StateInterner
from gpupool.scheduler.contract import DeviceLoad, NodeVerdict, PlacementResult, loads_on
from gpupool.scheduler.framework import CycleState, PluginContext, Scheduler
from gpupool.scheduler.models import MIG_HINT, has_mig_instances, model_constraint
from gpupool.scheduler.plugins.fgd import FgdScore
from gpupool.scheduler.profiles import build_scheduler, resolve
from gpupool.scheduler.request import Request
from gpupool.scheduler.vm_slots import SlotTraits

MILLI_PER_PERCENT = 10
_IMPOSSIBLE = np.iinfo(np.int64).max // 4
REMEMBERED = 4096
"""Requests and picks a live cluster remembers (least recently made forgotten first)."""

SpecKey = tuple[object, ...]


def spec_key(spec: ClaimSpec) -> SpecKey:
    """What a claim's `Request` depends on (all but preemptibility: labels name VM profiles and
    devices, see `request_for`)."""
    labels = tuple(sorted(spec.labels.items())) if spec.labels else ()
    return (spec.gpus, spec.memory_bytes, spec.compute_percent, spec.model, spec.priority, spec.mig, labels)


def snapshot(
    loads: Sequence[DeviceLoad], interner: StateInterner | None = None
) -> tuple[Cluster, list[list[Device]]]:
    """A cluster of the devices as loaded now, and the device in each (row, slot)."""
    groups: dict[tuple[str, str], list[DeviceLoad]] = defaultdict(list)
    for load in loads:
        groups[(load.device.node, load.device.model)].append(load)
    keys = sorted(groups)
    rows = [sorted(groups[key], key=lambda load: load.device.index) for key in keys]
    width = max((len(row) for row in rows), default=1)
    count = len(rows)
    where_rows: list[int] = []
    where_slots: list[int] = []
    uuid_slot: dict[str, tuple[int, int]] = {}
    for r, row in enumerate(rows):
        for s, load in enumerate(row):
            where_rows.append(r)
            where_slots.append(s)
            uuid_slot[load.device.uuid] = (r, s)
    flat = [load for row in rows for load in row]
    at = (np.asarray(where_rows, dtype=np.intp), np.asarray(where_slots, dtype=np.intp))
    milli_total = np.zeros((count, width), dtype=np.int64)
    milli_free = np.zeros_like(milli_total)
    mem_total = np.zeros_like(milli_total)
    mem_free = np.zeros_like(milli_total)
    busy = np.zeros((count, width))
    milli_total[at] = 100 * MILLI_PER_PERCENT
    milli_free[at] = np.maximum(0, [load.free_compute_percent for load in flat]) * MILLI_PER_PERCENT
    mem_total[at] = [load.device.memory_total_bytes for load in flat]
    mem_free[at] = np.maximum(0, np.asarray([load.free_memory_bytes for load in flat], dtype=np.int64))
    busy[at] = [load.utilization_percent for load in flat]
    nvlink = None
    if any(load.device.nvlink_peers for load in loads):
        nvlink = np.zeros((count, width, width), dtype=np.bool_)
        for r, row in enumerate(rows):
            for s, load in enumerate(row):
                for peer in load.device.nvlink_peers:
                    where = uuid_slot.get(peer)
                    if where is not None and where[0] == r:
                        nvlink[r, s, where[1]] = nvlink[r, where[1], s] = True
    models = sorted({key[1] for key in keys})
    zeros = np.zeros(count, dtype=np.int64)
    cluster = Cluster(
        node_names=[key[0] for key in keys],
        models=models,
        model_id=np.asarray([models.index(key[1]) for key in keys], dtype=np.int64),
        cpu_total_milli=zeros,
        cpu_free_milli=zeros.copy(),
        mem_total=zeros.copy(),
        mem_free=zeros.copy(),
        gpu_count=np.asarray([len(row) for row in rows], dtype=np.int64),
        gpu_total_milli=milli_total,
        gpu_free_milli=milli_free,
        gpu_mem_total_bytes=mem_total,
        gpu_mem_free_bytes=mem_free,
        nvlink=nvlink,
        utilization=busy,
        slot_ids=[[load.device.uuid for load in row] for row in rows],
        slot_traits=SlotTraits.build(rows, width),
        interner=interner or StateInterner(),
    )
    return cluster, [[load.device for load in row] for row in rows]


class SnapshotCache:
    """Reuses the cluster built for the same devices: only rows whose free compute or memory changed
    are rewritten (and re-interned), so a decision over thousands of devices does not rebuild and
    re-key every node state. Any change in the device list rebuilds from scratch."""

    def __init__(self, interner: StateInterner) -> None:
        self.interner = interner
        self._devices: list[Device] | None = None
        self._cluster: Cluster | None = None
        self._grid: list[list[Device]] = []
        self._at: tuple[NDArray[np.intp], NDArray[np.intp]] | None = None

    def get(self, loads: Sequence[DeviceLoad]) -> tuple[Cluster, list[list[Device]]]:
        devices = [load.device for load in loads]
        cluster, at = self._cluster, self._at
        # VM traits (hosted profile, passthrough holder, host pids) change without the devices or
        # their free room changing: loads that carry them get a fresh snapshot (VM hosts are small).
        if any(load.traits is not None for load in loads):
            self._cluster = self._at = None  # nor is such a snapshot kept for later calls
            return snapshot(loads, self.interner)
        if cluster is None or at is None or not self._same(devices):
            cluster, self._grid = snapshot(loads, self.interner)
            self._cluster, self._devices = cluster, devices
            where = {d.uuid: (r, s) for r, row in enumerate(self._grid) for s, d in enumerate(row)}
            places = [where[device.uuid] for device in devices]
            self._at = (
                np.asarray([r for r, _ in places], dtype=np.intp),
                np.asarray([s for _, s in places], dtype=np.intp),
            )
            return cluster, self._grid
        milli = np.zeros_like(cluster.gpu_free_milli)
        memory = np.zeros_like(cluster.gpu_mem_free_bytes)
        milli[at] = np.maximum(0, [load.free_compute_percent for load in loads]) * MILLI_PER_PERCENT
        memory[at] = np.maximum(0, np.asarray([load.free_memory_bytes for load in loads], dtype=np.int64))
        changed = np.flatnonzero(
            (milli != cluster.gpu_free_milli).any(axis=1) | (memory != cluster.gpu_mem_free_bytes).any(axis=1)
        )
        cluster.gpu_free_milli[changed] = milli[changed]
        cluster.gpu_mem_free_bytes[changed] = memory[changed]
        for row in changed.tolist():
            cluster.mark_changed(row)
        if cluster.utilization is not None:
            cluster.utilization[at] = [load.utilization_percent for load in loads]
        # what earlier decisions bound in this snapshot is known only through the loads
        cluster.kind_counts[:] = 0
        cluster.occupants.clear()
        return cluster, self._grid

    def _same(self, devices: list[Device]) -> bool:
        known = self._devices
        if known is None or len(known) != len(devices):
            return False
        return all(a is b or a == b for a, b in zip(known, devices, strict=True))


def request_for(spec: ClaimSpec, cluster: Cluster) -> Request:
    """The claim as a Request with its exact demand on every (row, slot) of this cluster."""
    totals = cluster.gpu_mem_total_bytes
    slot_milli = np.full(totals.shape, _IMPOSSIBLE, dtype=np.int64)
    slot_memory = np.full(totals.shape, _IMPOSSIBLE, dtype=np.int64)
    nominal: dict[int, int] = {}
    for total in np.unique(totals[totals > 0]):
        memory, compute = spec.demand_on(int(total))
        where = totals == total
        slot_milli[where] = compute * MILLI_PER_PERCENT
        slot_memory[where] = memory
        nominal[compute * MILLI_PER_PERCENT] = nominal.get(compute * MILLI_PER_PERCENT, 0) + int(where.sum())
    gpu_milli = max(nominal, key=lambda milli: nominal[milli]) if nominal else 100 * MILLI_PER_PERCENT
    models, pattern = model_constraint(spec, cluster.models)
    devices = spec.labels.get(DEVICES_LABEL)
    return Request(
        gpus=spec.gpus,
        gpu_milli=gpu_milli,
        models=models,
        model_pattern=pattern,
        describe=_describe(spec),
        slot_milli=slot_milli,
        slot_memory=slot_memory,
        priority=spec.priority,
        vgpu_profile=spec.labels.get(VGPU_PROFILE_LABEL, ""),
        passthrough=spec.labels.get(PASSTHROUGH_LABEL) == "true",
        devices=frozenset(devices.split(",")) if devices is not None else None,
    )


def _describe(spec: ClaimSpec) -> str:
    if spec.whole_gpu:
        return "all memory and compute"
    parts = []
    if spec.memory_bytes is not None:
        parts.append(format_size(spec.memory_bytes))
    if spec.compute_percent is not None:
        parts.append(f"{spec.compute_percent}% compute")
    return " and ".join(parts)


class LiveCluster(Sequence[DeviceLoad]):
    """The pool's devices as a reusable `Cluster`, current with what is bound plus what is assumed.

    `allocated(uuid)` gives a device's committed (memory bytes, compute percent); `assume` adds a
    placement that is being committed (kube-scheduler's assume: the next decision must not take
    the same room) and `forget` takes it away once its commit is done or refused. `refresh` rereads
    the given devices (or all). Not thread-safe: the pool calls it under its scheduling lock.

    It is also a `Sequence[DeviceLoad]`, materialised on demand, for placers and what-ifs that
    work on load lists.
    """

    def __init__(
        self,
        devices: Sequence[Device],
        allocated: Callable[[str], tuple[int, int]],
        interner: StateInterner | None = None,
    ) -> None:
        self.devices = list(devices)
        self.allocated = allocated
        self.cluster, self.slots = snapshot([DeviceLoad(device=d) for d in self.devices], interner)
        self._where = {
            device.uuid: (r, s) for r, row in enumerate(self.slots) for s, device in enumerate(row)
        }
        self._by_uuid = {device.uuid: device for device in self.devices}
        self._assumed: dict[str, tuple[int, int]] = {}
        self._loads: list[DeviceLoad] | None = None
        # Device sizes never change here, so a claim shape's Request is built once; and a pick is
        # remembered per (claim, node state) the way scores are (see `_RememberedPicks`).
        self.requests: dict[SpecKey, Request] = {}
        self.picks: dict[tuple[object, ...], tuple[int, ...]] = {}
        self.refresh()

    def request(self, spec: ClaimSpec) -> Request:
        key = spec_key(spec)
        found = self.requests.get(key)
        if found is None:
            if len(self.requests) >= REMEMBERED:
                del self.requests[next(iter(self.requests))]
            found = self.requests[key] = request_for(spec, self.cluster)
        return found

    def refresh(self, uuids: Iterable[str] | None = None) -> None:
        """Reread the committed totals of these devices (all when None)."""
        for uuid in self._by_uuid if uuids is None else uuids:
            self._update(uuid)

    def assume(self, bindings: Iterable[Binding], sign: int = 1) -> None:
        """Count a placement being committed (`sign=-1`: stop counting it)."""
        for binding in bindings:
            memory, compute = self._assumed.get(binding.device_uuid, (0, 0))
            memory += sign * binding.memory_bytes
            compute += sign * binding.compute_percent
            if memory or compute:
                self._assumed[binding.device_uuid] = (memory, compute)
            else:
                self._assumed.pop(binding.device_uuid, None)
            self._update(binding.device_uuid)

    def forget(self, bindings: Iterable[Binding]) -> None:
        self.assume(bindings, sign=-1)

    def _update(self, uuid: str) -> None:
        where = self._where.get(uuid)
        if where is None:
            return
        memory, compute = self.allocated(uuid)
        extra_memory, extra_compute = self._assumed.get(uuid, (0, 0))
        row, slot = where
        total = self.cluster.gpu_mem_total_bytes[row, slot]
        self.cluster.gpu_mem_free_bytes[row, slot] = max(0, total - memory - extra_memory)
        self.cluster.gpu_free_milli[row, slot] = max(0, 100 - compute - extra_compute) * MILLI_PER_PERCENT
        self.cluster.mark_changed(row)
        self._loads = None

    # Sequence[DeviceLoad]
    def _materialised(self) -> list[DeviceLoad]:
        if self._loads is None:
            loads = []
            for device in self.devices:
                memory, compute = self.allocated(device.uuid)
                extra_memory, extra_compute = self._assumed.get(device.uuid, (0, 0))
                loads.append(DeviceLoad(device, memory + extra_memory, compute + extra_compute))
            self._loads = loads
        return self._loads

    def __len__(self) -> int:
        return len(self.devices)

    @overload
    def __getitem__(self, index: int) -> DeviceLoad: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[DeviceLoad]: ...

    def __getitem__(self, index: int | slice) -> DeviceLoad | Sequence[DeviceLoad]:
        return self._materialised()[index]

    def __iter__(self) -> Iterator[DeviceLoad]:
        return iter(self._materialised())


class _RememberedPicks:
    """An FGD-style picker whose picks on a live cluster are remembered.

    Its pick is a pure function of the claim, the node's row (free milli and memory per slot, CPU,
    model; NVLink is fixed per live cluster) and the scorer's `cache_version`, which is exactly
    what its scores are cached by (per node state, see `StateTable`); so a claim shape placed again
    on a node in a state seen before costs a dict lookup instead of the fragmentation of every
    option. Throwaway snapshots (what-ifs) are not remembered.
    """

    def __init__(self, inner: FgdScore) -> None:
        self.inner = inner
        self.NAME = inner.NAME
        self.memo: dict[tuple[object, ...], tuple[int, ...]] | None = None  # set per live placement
        self.claim: SpecKey | None = None

    def pick(self, request: Request, cluster: Cluster, node: int, cycle: CycleState) -> tuple[int, ...]:
        memo = self.memo
        if memo is None:
            return self.inner.pick(request, cluster, node, cycle)
        key = (
            self.claim,
            node if cluster.nvlink is not None else -1,
            cluster.gpu_free_milli[node].tobytes(),
            cluster.gpu_mem_free_bytes[node].tobytes(),
            int(cluster.cpu_free_milli[node]),
            int(cluster.model_id[node]),
            self.inner.cache_version(cluster),
        )
        found = memo.get(key)
        if found is None:
            if len(memo) >= REMEMBERED:
                del memo[next(iter(memo))]
            found = memo[key] = self.inner.pick(request, cluster, node, cycle)
        return found


class FrameworkPlacer:
    """A `Placer` for the pool: one profile's scheduler, with state (online workload) kept across calls."""

    def __init__(self, policy: str = "default") -> None:
        profile = resolve(policy)
        self.name = profile.name
        self.scheduler: Scheduler = build_scheduler(profile, PluginContext())
        self.scheduler.actions = []  # the Placer contract cannot move bound claims
        self._picks = (
            _RememberedPicks(self.scheduler.picker) if isinstance(self.scheduler.picker, FgdScore) else None
        )
        if self._picks is not None:
            self.scheduler.picker = self._picks
        self.interner = StateInterner()
        self.snapshots = SnapshotCache(self.interner)
        self._lock = threading.Lock()

    def place(self, spec: ClaimSpec, cluster: Sequence[DeviceLoad], learn: bool = True) -> PlacementResult:
        if not cluster:
            return PlacementResult(reason="no device in the pool")
        with self._lock:
            if isinstance(cluster, LiveCluster):
                snap, devices = cluster.cluster, cluster.slots
                request = cluster.request(spec)
                memo = cluster.picks
            else:
                snap, devices = self.snapshots.get(cluster)
                request = request_for(spec, snap)
                memo = None
            if self._picks is not None:
                self._picks.memo, self._picks.claim = memo, spec_key(spec)
            # Decide only: the pool takes the room itself (assumed, then committed), so the
            # snapshot is never allocated from and given back.
            decision = self.scheduler.decide(request, snap, learn=learn)
            if not decision.status.ok:
                reason = decision.status.reason
                if spec.mig is None and has_mig_instances(snap.models):
                    reason += MIG_HINT
                return PlacementResult(reason=reason)
            fits = snap.fitting_slots(request, decision.node)
            if len(set(decision.gpus)) != spec.gpus or not all(fits[slot] for slot in decision.gpus):
                raise CapacityError(f"{self.name}: picked GPUs {decision.gpus} that cannot hold the claim")
            milli, memory = snap.slot_demand(request, decision.node)
            row = devices[decision.node]
            return PlacementResult(
                bindings=tuple(
                    Binding(
                        device_uuid=row[slot].uuid,
                        node=row[slot].node,
                        memory_bytes=int(memory[slot]),
                        compute_percent=int(milli[slot]) // MILLI_PER_PERCENT,
                        device_index=row[slot].index,
                        whole_device=spec.whole_gpu,
                    )
                    for slot in decision.gpus
                )
            )

    def assess(self, spec: ClaimSpec, cluster: Sequence[DeviceLoad]) -> list[NodeVerdict]:
        """Rank every node the way `place` does (nothing learnt, nothing changed); a node that fails
        the filters gets the reason `place` would give on that node alone."""
        if not cluster:
            return []
        with self._lock:
            snap, _devices = snapshot(cluster, self.interner)
            request = request_for(spec, snap)
            ranking = self.scheduler.rank(request, snap, learn=False)
        scores: dict[str, float] = {}
        best = ""
        if ranking.status.ok:
            row_scores = ranking.scores if ranking.scores is not None else np.zeros(ranking.nodes.size)
            for row, score in zip(ranking.nodes, row_scores, strict=True):
                name = snap.node_names[int(row)]  # a node with two models has two rows: its best counts
                scores[name] = max(float(score), scores.get(name, -np.inf))
            best = snap.node_names[ranking.best]
        verdicts = []
        for name in sorted({load.device.node for load in cluster}):
            if name in scores:
                verdicts.append(NodeVerdict(name, True, score=scores[name], best=name == best))
                continue
            alone = self.place(spec, loads_on(cluster, {name}), learn=False)
            verdicts.append(NodeVerdict(name, False, alone.reason or "not among the policy's candidates"))
        return verdicts
