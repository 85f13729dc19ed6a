"""FGD's fragmentation measure (ATC'23, BENCHMARK.md §3), vectorised over node states.

F_n(m): the GPU milli of node n that a task of shape m cannot use; F_n(M) = sum_m p_m F_n(m).
All quantities are in milli-GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.request import MILLI_PER_GPU, Request

Shape = tuple[int, int, int, tuple[str, ...] | None, str | None]  # cpu, milli/GPU, GPUs, models, pattern


@dataclass(frozen=True)
class TargetWorkload:
    """Task shapes and their probabilities: the "typical pods" fragmentation is measured against."""

    shapes: tuple[Shape, ...]
    probs: NDArray[np.float64]
    cpu_milli: NDArray[np.int64] = field(init=False)
    gpu_milli: NDArray[np.int64] = field(init=False)
    gpus: NDArray[np.int64] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cpu_milli", np.asarray([s[0] for s in self.shapes], dtype=np.int64))
        object.__setattr__(self, "gpu_milli", np.asarray([s[1] for s in self.shapes], dtype=np.int64))
        object.__setattr__(self, "gpus", np.asarray([s[2] for s in self.shapes], dtype=np.int64))

    def allowed(self, cluster: Cluster) -> NDArray[np.bool_]:
        """(shapes, models) bool: may shape m run on model v of this cluster's vocabulary."""
        rows = [cluster.model_mask(Request(models=shape[3], model_pattern=shape[4])) for shape in self.shapes]
        return np.asarray(rows, dtype=np.bool_).reshape(len(self.shapes), len(cluster.models))

    @classmethod
    def typical(cls, shapes: list[Shape], threshold: float = 0.95) -> TargetWorkload:
        """GetTypicalPods: the commonest shapes covering `threshold` of tasks, renormalised."""
        return cls.from_counts(_count(shapes), threshold)

    @classmethod
    def from_counts(cls, counts: dict[Shape, float], threshold: float = 0.95) -> TargetWorkload:
        """Top shapes by (count, cpu, milli, GPUs, spec) descending until `threshold` is covered."""
        total = sum(counts.values())
        ranked = sorted(counts.items(), key=lambda item: (item[1], *_tie_key(item[0])), reverse=True)
        chosen: list[tuple[Shape, float]] = []
        covered = 0.0
        for shape, count in ranked:
            chosen.append((shape, count))
            covered += count
            if covered >= threshold * total:
                break
        weights = np.asarray([count for _, count in chosen], dtype=np.float64)
        return cls(tuple(shape for shape, _ in chosen), weights / weights.sum())


def _count(shapes: list[Shape]) -> dict[Shape, float]:
    counts: dict[Shape, float] = {}
    for shape in shapes:
        counts[shape] = counts.get(shape, 0.0) + 1.0
    return counts


def _tie_key(shape: Shape) -> tuple[int, int, int, str]:
    models = "|".join(shape[3]) if shape[3] else (shape[4] or "")
    return (shape[0], shape[1], shape[2], models)


SLOT_RANGE = MILLI_PER_GPU  # the per-GPU tables cover free milli -1000..1000 (a move that does not fit
# goes negative; its points are thrown away, but they are computed like the others)


@dataclass(frozen=True)
class SlotSums:
    """Per node state and shape (B, shapes), summed over the node's GPUs: the tasks of the shape
    each GPU holds (packing, whole GPUs count 1), the GPUs one task fits, and the milli on GPUs too
    small for one task. Every measure below is a function of these and the node's CPU and model."""

    tasks: NDArray[np.int64]
    fits: NDArray[np.int64]
    small: NDArray[np.int64]
    idle: NDArray[np.float64]  # (B,) free milli of the node


@dataclass
class ResolvedWorkload:
    """A TargetWorkload with model constraints resolved against one cluster vocabulary."""

    workload: TargetWorkload
    allowed: NDArray[np.bool_]  # (shapes, models)
    # distinct columns of the per-GPU table (free milli -1000..1000 x 3 x shapes) and where each
    # of the 3 x shapes columns is among them (many shapes share a per-GPU size)
    _table: tuple[NDArray[np.int16], NDArray[np.intp]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _cpu: tuple[NDArray[np.int64], NDArray[np.intp]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def of(cls, workload: TargetWorkload, cluster: Cluster) -> ResolvedWorkload:
        return cls(workload, workload.allowed(cluster))

    def slot_sums(self, free_milli: NDArray[np.int64]) -> SlotSums:
        """`SlotSums` of a batch of node states (free milli per GPU, (B, slots)).

        Per GPU the three quantities are read from a table indexed by its free milli (a gather
        instead of a division and two comparisons per GPU and shape); outside the table's range
        they are computed."""
        wl = self.workload
        count = len(wl.shapes)
        idle = free_milli.sum(axis=1).astype(np.float64)
        if free_milli.size and (free_milli.min() < -SLOT_RANGE or free_milli.max() > SLOT_RANGE):
            table = self._per_gpu(free_milli[:, :, None], wl.gpu_milli).sum(axis=1)
        else:
            distinct, columns = self._slot_table()
            table = distinct[free_milli + SLOT_RANGE].sum(axis=1, dtype=np.int64)[:, columns]
        return SlotSums(table[:, :count], table[:, count : 2 * count], table[:, 2 * count :], idle)

    def _slot_table(self) -> tuple[NDArray[np.int16], NDArray[np.intp]]:
        if self._table is None:
            free = np.arange(-SLOT_RANGE, SLOT_RANGE + 1, dtype=np.int64)[:, None]
            # the three columns of a shape depend on its milli per GPU alone
            values, inverse = np.unique(self.workload.gpu_milli, return_inverse=True)
            distinct = self._per_gpu(free, values).astype(np.int16)  # |values| <= 1000
            inverse = inverse.reshape(-1)
            columns = np.concatenate((inverse, inverse + values.size, inverse + 2 * values.size))
            self._table = (distinct, columns)
        return self._table

    def _cpu_tasks(self, cpu_free_milli: NDArray[np.int64]) -> NDArray[np.int64]:
        """(B, shapes): how many tasks of each shape the CPU holds (unbounded for CPU-free shapes)."""
        wl = self.workload
        if self._cpu is None:
            values, columns = np.unique(np.maximum(wl.cpu_milli, 1), return_inverse=True)
            self._cpu = (values, columns.reshape(-1))
        values, columns = self._cpu
        tasks = (cpu_free_milli[:, None] // values[None, :])[:, columns]
        return np.where(wl.cpu_milli[None, :] > 0, tasks, np.iinfo(np.int64).max)

    @staticmethod
    def _per_gpu(free: NDArray[np.int64], gpu_milli: NDArray[np.int64]) -> NDArray[np.int64]:
        """(..., 3 x sizes) for free milli (..., 1) and per-GPU sizes: tasks held, fits one, milli
        too small."""
        milli = np.maximum(gpu_milli, 1)
        whole = gpu_milli >= 1000
        tasks = np.where(whole, free >= milli, free // milli)
        fit = free >= gpu_milli
        small = free * ~fit
        return np.concatenate(np.broadcast_arrays(tasks, fit, small), axis=-1).astype(np.int64)

    def frag(
        self,
        free_milli: NDArray[np.int64],
        cpu_free_milli: NDArray[np.int64],
        model_id: NDArray[np.int64],
        no_access: bool = True,
        sums: SlotSums | None = None,
    ) -> NDArray[np.float64]:
        """F_n(M) in milli-GPU for a batch of node states: free (B, slots), cpu (B,), model (B,).

        `no_access=False`: a shape that may not run on the node's model counts nothing there
        (FGD counts all idle GPU as its fragment)."""
        wl = self.workload
        sums = sums or self.slot_sums(free_milli)
        allowed = self.allowed[:, model_id].T
        satisfied = (
            (sums.fits >= wl.gpus[None, :])
            & (cpu_free_milli[:, None] >= wl.cpu_milli[None, :])
            & allowed
            & (wl.gpu_milli[None, :] > 0)
        )
        per_shape = np.where(satisfied, sums.small.astype(np.float64), sums.idle[:, None])
        if not no_access:
            per_shape = np.where(allowed, per_shape, 0.0)
        result: NDArray[np.float64] = per_shape @ wl.probs
        return result

    def capacity_frag(
        self,
        free_milli: NDArray[np.int64],
        cpu_free_milli: NDArray[np.int64],
        model_id: NDArray[np.int64],
        no_access: bool = True,
        sums: SlotSums | None = None,
    ) -> NDArray[np.float64]:
        """Expected idle milli-GPU that stays unused if the node were filled with tasks of one shape.

        Like F_n(M), but counts how many tasks of shape m fit at once (per-GPU slivers after packing
        m, and CPU that runs out before the GPUs do), not only whether one more fits. `no_access` as
        in `frag`.
        """
        sums = sums or self.slot_sums(free_milli)
        usable = self.usable(free_milli, cpu_free_milli, model_id, sums)
        per_shape = sums.idle[:, None] - usable
        if not no_access:
            per_shape = np.where(self.allowed[:, model_id].T, per_shape, 0.0)
        result: NDArray[np.float64] = per_shape @ self.workload.probs
        return result

    def usable(
        self,
        free_milli: NDArray[np.int64],
        cpu_free_milli: NDArray[np.int64],
        model_id: NDArray[np.int64],
        sums: SlotSums | None = None,
    ) -> NDArray[np.float64]:
        """(B, shapes): the milli-GPU of each node state that tasks of each shape can fill at once
        (per-GPU packing, CPU running out first; 0 where the shape may not run on the model)."""
        wl = self.workload
        sums = sums or self.slot_sums(free_milli)
        tasks_gpu = sums.tasks // np.maximum(wl.gpus, 1)[None, :]  # (B, shapes)
        tasks_cpu = self._cpu_tasks(cpu_free_milli)
        allowed = self.allowed[:, model_id].T
        usable_tasks = np.minimum(tasks_gpu, tasks_cpu) * allowed * (wl.gpu_milli > 0)[None, :]
        usable = usable_tasks * (wl.gpu_milli * wl.gpus)[None, :]
        result: NDArray[np.float64] = np.minimum(usable, sums.idle[:, None])
        return result

    def measure(
        self,
        name: str,
        free_milli: NDArray[np.int64],
        cpu_free_milli: NDArray[np.int64],
        model_id: NDArray[np.int64],
        no_access: bool = True,
    ) -> NDArray[np.float64]:
        """`fgd` (F_n(M)), `capacity` or `blendW` (W x capacity + (1 - W) x fgd), in milli-GPU;
        `no_access` as in `frag`."""
        sums = self.slot_sums(free_milli)
        if name == "capacity":
            return self.capacity_frag(free_milli, cpu_free_milli, model_id, no_access, sums)
        if name.startswith("blend"):
            weight = float(name.removeprefix("blend") or 0.5)
            capacity = self.capacity_frag(free_milli, cpu_free_milli, model_id, no_access, sums)
            blended: NDArray[np.float64] = weight * capacity + (1.0 - weight) * self.frag(
                free_milli, cpu_free_milli, model_id, no_access, sums
            )
            return blended
        return self.frag(free_milli, cpu_free_milli, model_id, no_access, sums)


class OnlineWorkload:
    """Decaying histogram of the shapes of claims that have arrived: all a live pool can know.

    Each arrival counts 1; older arrivals fade with `half_life` arrivals (0 = never fade).
    """

    def __init__(self, half_life: float = 0.0, threshold: float = 0.95) -> None:
        self.decay = 0.5 ** (1.0 / half_life) if half_life > 0 else 1.0
        self.threshold = threshold
        self.counts: dict[Shape, float] = {}
        self.weight = 1.0
        self.arrivals = 0

    def observe(self, shape: Shape) -> None:
        """Count one arrival of `shape`."""
        self.arrivals += 1
        self.weight /= self.decay
        self.counts[shape] = self.counts.get(shape, 0.0) + self.weight
        if self.weight > 1e200:
            self.counts = {key: value / self.weight for key, value in self.counts.items()}
            self.weight = 1.0

    def snapshot(self) -> TargetWorkload | None:
        """The current typical shapes, or None before the first arrival."""
        if not self.counts:
            return None
        return TargetWorkload.from_counts(self.counts, self.threshold)


def node_frag(cluster: Cluster, resolved: ResolvedWorkload, nodes: NDArray[np.intp]) -> NDArray[np.float64]:
    """F_n(M) in milli-GPU of the given nodes as they are now."""
    return resolved.frag(
        cluster.gpu_free_milli[nodes], cluster.cpu_free_milli[nodes], cluster.model_id[nodes]
    )
