"""FGD's fragmentation measure (ATC'23, BENCHMARK.md §3), vectorised over node states.

F_n(m): the GPU milli of node n that a task of shape m cannot use; F_n(M) = sum_m p_m F_n(m).
All quantities are in milli-GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.request import Request

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


@dataclass
class ResolvedWorkload:
    """A TargetWorkload with model constraints resolved against one cluster vocabulary."""

    workload: TargetWorkload
    allowed: NDArray[np.bool_]  # (shapes, models)

    @classmethod
    def of(cls, workload: TargetWorkload, cluster: Cluster) -> ResolvedWorkload:
        return cls(workload, workload.allowed(cluster))

    def frag(
        self,
        free_milli: NDArray[np.int64],
        cpu_free_milli: NDArray[np.int64],
        model_id: NDArray[np.int64],
        no_access: bool = True,
    ) -> NDArray[np.float64]:
        """F_n(M) in milli-GPU for a batch of node states: free (B, slots), cpu (B,), model (B,).

        `no_access=False`: a shape that may not run on the node's model counts nothing there
        (FGD counts all idle GPU as its fragment)."""
        wl = self.workload
        fit = free_milli[:, :, None] >= wl.gpu_milli[None, None, :]  # (B, slots, shapes)
        allowed = self.allowed[:, model_id].T
        satisfied = (
            (fit.sum(axis=1) >= wl.gpus[None, :])
            & (cpu_free_milli[:, None] >= wl.cpu_milli[None, :])
            & allowed
            & (wl.gpu_milli[None, :] > 0)
        )
        idle = free_milli.sum(axis=1).astype(np.float64)
        small = (free_milli[:, :, None] * ~fit).sum(axis=1).astype(np.float64)
        per_shape = np.where(satisfied, small, idle[:, None])
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
    ) -> NDArray[np.float64]:
        """Expected idle milli-GPU that stays unused if the node were filled with tasks of one shape.

        Like F_n(M), but counts how many tasks of shape m fit at once (per-GPU slivers after packing
        m, and CPU that runs out before the GPUs do), not only whether one more fits. `no_access` as
        in `frag`.
        """
        idle = free_milli.sum(axis=1).astype(np.float64)
        usable = self.usable(free_milli, cpu_free_milli, model_id)
        per_shape = idle[:, None] - usable
        if not no_access:
            per_shape = np.where(self.allowed[:, model_id].T, per_shape, 0.0)
        result: NDArray[np.float64] = per_shape @ self.workload.probs
        return result

    def usable(
        self,
        free_milli: NDArray[np.int64],
        cpu_free_milli: NDArray[np.int64],
        model_id: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        """(B, shapes): the milli-GPU of each node state that tasks of each shape can fill at once
        (per-GPU packing, CPU running out first; 0 where the shape may not run on the model)."""
        wl = self.workload
        milli = np.maximum(wl.gpu_milli, 1)[None, None, :]
        whole = wl.gpu_milli >= 1000
        per_gpu = np.where(
            whole[None, None, :], free_milli[:, :, None] >= milli, free_milli[:, :, None] // milli
        )
        tasks_gpu = per_gpu.sum(axis=1) // np.maximum(wl.gpus, 1)[None, :]  # (B, shapes)
        tasks_cpu = np.where(
            wl.cpu_milli[None, :] > 0,
            cpu_free_milli[:, None] // np.maximum(wl.cpu_milli, 1)[None, :],
            np.iinfo(np.int64).max,
        )
        allowed = self.allowed[:, model_id].T
        usable_tasks = np.minimum(tasks_gpu, tasks_cpu) * allowed * (wl.gpu_milli > 0)[None, :]
        idle = free_milli.sum(axis=1).astype(np.float64)
        usable = usable_tasks * (wl.gpu_milli * wl.gpus)[None, :]
        result: NDArray[np.float64] = np.minimum(usable, idle[:, None])
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
        if name == "capacity":
            return self.capacity_frag(free_milli, cpu_free_milli, model_id, no_access)
        if name.startswith("blend"):
            weight = float(name.removeprefix("blend") or 0.5)
            capacity = self.capacity_frag(free_milli, cpu_free_milli, model_id, no_access)
            blended: NDArray[np.float64] = weight * capacity + (1.0 - weight) * self.frag(
                free_milli, cpu_free_milli, model_id, no_access
            )
            return blended
        return self.frag(free_milli, cpu_free_milli, model_id, no_access)


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
