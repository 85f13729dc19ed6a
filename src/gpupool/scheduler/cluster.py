"""The whole cluster as numpy arrays: one row per node, one column per GPU slot.

Live and simulated scheduling both build a `Cluster`; plugins read its arrays and only
`allocate` / `release` change it, so the no-over-commit invariant is checked in one place.
Absent GPU slots (a 2-GPU node in an 8-slot array) have 0 capacity and 0 free.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from gpupool.errors import CapacityError
from gpupool.scheduler.request import MILLI_PER_GPU, Request
from gpupool.scheduler.vm_slots import SlotTraits

KIND_SLOTS = 10  # kind counters per node: shared GPU, 1..8 whole GPUs, more


@dataclass(frozen=True)
class Allocation:
    """What one bound claim holds on one node; `release` gives exactly this back."""

    node: int
    gpus: tuple[int, ...]
    gpu_milli: tuple[int, ...]
    gpu_memory: tuple[int, ...]
    cpu_milli: int
    memory: int
    kind: int
    request: Request | None = field(default=None, compare=False)  # what was asked, to move it later


class StateInterner:
    """Gives equal node states (model, CPU free, sorted per-GPU free) the same small integer id.

    Share one interner across clusters so that caches keyed by id stay valid (live pool).
    """

    def __init__(self) -> None:
        self.ids: dict[bytes, int] = {}

    def intern(self, key: bytes) -> int:
        found = self.ids.get(key)
        if found is None:
            found = self.ids[key] = len(self.ids)
        return found


@dataclass(eq=False)
class Cluster:
    """Free and total capacity of every node and GPU slot; units in the field names."""

    node_names: list[str]
    models: list[str]  # vocabulary; model_id indexes it
    model_id: NDArray[np.int64]
    cpu_total_milli: NDArray[np.int64]
    cpu_free_milli: NDArray[np.int64]
    mem_total: NDArray[np.int64]  # node memory, MiB in the simulator
    mem_free: NDArray[np.int64]
    gpu_count: NDArray[np.int64]
    gpu_total_milli: NDArray[np.int64]  # (nodes, slots)
    gpu_free_milli: NDArray[np.int64]
    gpu_mem_total_bytes: NDArray[np.int64]  # (nodes, slots); all 0 when memory is not modelled
    gpu_mem_free_bytes: NDArray[np.int64]
    nvlink: NDArray[np.bool_] | None = None  # (nodes, slots, slots) when topology is known
    utilization: NDArray[np.float64] | None = None  # (nodes, slots) sampled %, live only
    slot_ids: list[list[str]] | None = None  # device UUID per slot, live only
    slot_traits: SlotTraits | None = None  # what a VM host knows of each GPU, live with --libvirt only
    interner: StateInterner = field(default_factory=StateInterner)
    kind_counts: NDArray[np.int64] = field(init=False)
    occupants: dict[tuple[int, int], list[Allocation]] = field(init=False)  # (node, slot) -> bound claims
    _state_ids: NDArray[np.int64] = field(init=False)
    _dirty: set[int] = field(init=False)
    _mask_cache: dict[tuple[object, ...], NDArray[np.bool_]] = field(init=False)

    def __post_init__(self) -> None:
        self.kind_counts = np.zeros((len(self.node_names), KIND_SLOTS), dtype=np.int64)
        self.occupants = {}
        self._state_ids = np.zeros(len(self.node_names), dtype=np.int64)
        self._dirty = set(range(len(self.node_names)))
        self._mask_cache = {}

    @classmethod
    def build(
        cls,
        node_names: list[str],
        models: list[str],
        cpu_milli: list[int],
        memory: list[int],
        gpus: list[int],
        *,
        slots: int | None = None,
        interner: StateInterner | None = None,
    ) -> Cluster:
        """An empty cluster of whole nodes, each with `gpus[i]` GPUs of 1000 milli."""
        vocab = sorted(set(models))
        width = max([*gpus, 1]) if slots is None else slots
        count = np.asarray(gpus, dtype=np.int64)
        total = np.where(np.arange(width)[None, :] < count[:, None], MILLI_PER_GPU, 0).astype(np.int64)
        zeros = np.zeros_like(total)
        return cls(
            node_names=list(node_names),
            models=vocab,
            model_id=np.asarray([vocab.index(m) for m in models], dtype=np.int64),
            cpu_total_milli=np.asarray(cpu_milli, dtype=np.int64),
            cpu_free_milli=np.asarray(cpu_milli, dtype=np.int64).copy(),
            mem_total=np.asarray(memory, dtype=np.int64),
            mem_free=np.asarray(memory, dtype=np.int64).copy(),
            gpu_count=count,
            gpu_total_milli=total,
            gpu_free_milli=total.copy(),
            gpu_mem_total_bytes=zeros,
            gpu_mem_free_bytes=zeros.copy(),
            interner=interner or StateInterner(),
        )

    @property
    def size(self) -> int:
        return len(self.node_names)

    @property
    def total_gpu_milli(self) -> int:
        return int(self.gpu_total_milli.sum())

    def model_mask(self, request: Request) -> NDArray[np.bool_]:
        """Bool per model id: may the request run on that model."""
        key = (request.models, request.model_pattern)
        mask = self._mask_cache.get(key)
        if mask is None:
            allowed = [
                (request.models is None or model in request.models)
                and (
                    request.model_pattern is None
                    or fnmatch.fnmatch(model.lower(), request.model_pattern.lower())
                )
                for model in self.models
            ]
            mask = self._mask_cache[key] = np.asarray(allowed, dtype=np.bool_)
        return mask

    def slot_demand(self, request: Request, node: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Per-slot (milli, memory bytes) the request takes on each GPU of `node`."""
        width = self.gpu_free_milli.shape[1]
        milli = (
            request.slot_milli[node]
            if request.slot_milli is not None
            else np.full(width, request.gpu_milli, dtype=np.int64)
        )
        memory = (
            request.slot_memory[node]
            if request.slot_memory is not None
            else np.full(width, request.gpu_memory_bytes, dtype=np.int64)
        )
        return milli, memory

    def fitting_slots(self, request: Request, node: int) -> NDArray[np.bool_]:
        """Bool per slot of `node`: can this GPU hold one vGPU of the request."""
        milli, memory = self.slot_demand(request, node)
        fits: NDArray[np.bool_] = (
            (self.gpu_free_milli[node] >= milli)
            & (self.gpu_mem_free_bytes[node] >= memory)
            & (self.gpu_total_milli[node] > 0)
        )
        return fits

    def allocate(self, request: Request, node: int, gpus: tuple[int, ...]) -> Allocation:
        """Take the request's resources on `node` and `gpus`; CapacityError if it would over-commit."""
        if len(gpus) != request.gpus or len(set(gpus)) != len(gpus):
            raise CapacityError(f"need {request.gpus} distinct GPUs, got {gpus}")
        if self.cpu_free_milli[node] < request.cpu_milli or self.mem_free[node] < request.memory:
            raise CapacityError(f"node {self.node_names[node]} lacks CPU or memory")
        milli_demand, memory_demand = self.slot_demand(request, node)
        fits = self.fitting_slots(request, node)
        for slot in gpus:
            if not 0 <= slot < fits.size or not fits[slot]:
                raise CapacityError(f"GPU {slot} of node {self.node_names[node]} cannot hold the request")
        milli = tuple(int(milli_demand[slot]) for slot in gpus)
        memory = tuple(int(memory_demand[slot]) for slot in gpus)
        allocation = Allocation(
            node, gpus, milli, memory, request.cpu_milli, request.memory, request.kind, request
        )
        self._apply(allocation, -1)
        return allocation

    def restore(self, allocation: Allocation) -> None:
        """Take back exactly what a released allocation held (rollback of a move)."""
        node = allocation.node
        if self.cpu_free_milli[node] < allocation.cpu_milli or self.mem_free[node] < allocation.memory:
            raise CapacityError(f"node {self.node_names[node]} lacks CPU or memory to restore")
        for slot, milli, memory in zip(
            allocation.gpus, allocation.gpu_milli, allocation.gpu_memory, strict=True
        ):
            if self.gpu_free_milli[node, slot] < milli or self.gpu_mem_free_bytes[node, slot] < memory:
                raise CapacityError(f"GPU {slot} of node {self.node_names[node]} cannot be restored")
        self._apply(allocation, -1)

    def release(self, allocation: Allocation) -> None:
        """Give back exactly what `allocate` took."""
        node = allocation.node
        for slot, milli, memory in zip(
            allocation.gpus, allocation.gpu_milli, allocation.gpu_memory, strict=True
        ):
            if (
                self.gpu_free_milli[node, slot] + milli > self.gpu_total_milli[node, slot]
                or self.gpu_mem_free_bytes[node, slot] + memory > self.gpu_mem_total_bytes[node, slot]
            ):
                raise CapacityError(f"release of GPU {slot} on {self.node_names[node]} exceeds its capacity")
        self._apply(allocation, +1)

    def _apply(self, allocation: Allocation, sign: int) -> None:
        node = allocation.node
        self.cpu_free_milli[node] += sign * allocation.cpu_milli
        self.mem_free[node] += sign * allocation.memory
        for slot, milli, memory in zip(
            allocation.gpus, allocation.gpu_milli, allocation.gpu_memory, strict=True
        ):
            self.gpu_free_milli[node, slot] += sign * milli
            self.gpu_mem_free_bytes[node, slot] += sign * memory
        if allocation.kind >= 0:
            self.kind_counts[node, min(allocation.kind, KIND_SLOTS - 1)] -= sign
        for slot in allocation.gpus:
            held = self.occupants.setdefault((node, slot), [])
            if sign < 0:
                held.append(allocation)
            else:
                held.remove(allocation)
        self._dirty.add(node)

    def state_key(self, node: int) -> bytes:
        """Bytes equal for nodes whose model, CPU free and multiset of per-GPU free are equal."""
        milli = self.gpu_free_milli[node]
        memory = self.gpu_mem_free_bytes[node]
        order = np.lexsort((memory, milli))
        head = np.asarray([self.model_id[node], self.cpu_free_milli[node]], dtype=np.int64)
        return b"".join((head.tobytes(), milli[order].tobytes(), memory[order].tobytes()))

    def state_ids(self) -> NDArray[np.int64]:
        """Interned state id per node (see `StateInterner`), refreshed for changed nodes only."""
        if self._dirty:
            for node in self._dirty:
                self._state_ids[node] = self.interner.intern(self.state_key(node))
            self._dirty.clear()
        return self._state_ids

    def mark_changed(self, node: int) -> None:
        """Tell the cluster a row was edited outside allocate/release (tests, live refresh)."""
        self._dirty.add(node)
