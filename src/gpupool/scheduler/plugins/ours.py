"""`ours`: FGD's greedy step over a better fragmentation measure, learned online.

* the target workload is a histogram of the claims that have arrived (nothing read in advance);
* the measure blends FGD's F_n(M) with a *capacity* fragmentation (the idle milli-GPU left over if
  the node were filled with tasks of each shape: per-GPU slivers after packing, CPU that runs out
  before the GPUs), see `ResolvedWorkload.capacity_frag`;
* plus a *leftover* term: per GPU, the milli that no combination of the arrived share sizes can
  fill (free minus the largest sum of workload GPU sizes that fits), weighted by `leftover`; it
  steers shares towards complementary partners (650 + 320, 810 + 160) and away from leftovers
  that nothing fills, see `leftover_waste`;
* the leftover term is *crowding-aware*: every `crowd_every` arrivals it reads the cluster's open
  slivers and, per share size, the chance that a sliver it fits tightly is ever filled (the tasks of
  that size expected over the next `crowding` arrivals / the slivers waiting for them, capped at 1);
  a fill by a size with chance q counts only q of it, see `fill_chances`. With a glut of 190-milli
  slivers beside 810-milli tasks and few 160-milli tasks, a fresh 190 or 210 sliver counts as dead;
* points are int(100 * sigmoid(delta / 1000)) as in FGD; ties go to the lowest node name
  (optionally a packing tie-break); inside the node the tightest of the best GPUs is taken.

docs/scheduler.md has the measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.frag import ResolvedWorkload
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.plugins.common import (
    MAX_SPEC_CPU_MILLI,
    MAX_SPEC_GPU_MILLI,
    gpu_left_milli,
)
from gpupool.scheduler.plugins.fgd import FgdScore
from gpupool.scheduler.plugins.fragmodel import FragModel
from gpupool.scheduler.request import MILLI_PER_GPU, Request

NAME = "ours"
TIEBREAKS = ("none", "bestfit", "gpu-left", "cpu-left", "fewest-free", "cpu-balance")


def options(args: Mapping[str, Any]) -> dict[str, Any]:
    """Typed arguments of the plugin from a profile's args."""
    tiebreak = str(args.get("tiebreak", "none"))
    if tiebreak not in TIEBREAKS:
        raise ValueError(f"ours: tiebreak must be one of {TIEBREAKS}, got {tiebreak!r}")
    return {
        "tiebreak": tiebreak,
        "resolution": float(args.get("resolution", 100)),
        "tight_gpu": bool(args.get("tight_gpu", True)),
        "measure": str(args.get("measure", "blend0.5")),
        "leftover": float(args.get("leftover", 0.0)),
        "crowding": float(args.get("crowding", 0.0)),
        "crowd_every": int(args.get("crowd_every", 256)),
        "crowd_tolerance": float(args.get("crowd_tolerance", 0.0)),
    }


def _share_sizes(resolved: ResolvedWorkload) -> dict[int, float]:
    """Per-GPU size (whole GPUs count as 1000) -> its probability in the workload."""
    wl = resolved.workload
    sizes: dict[int, float] = {}
    for milli, gpus, prob in zip(wl.gpu_milli.tolist(), wl.gpus.tolist(), wl.probs.tolist(), strict=True):
        if gpus >= 1 and milli > 0:
            size = min(milli, MILLI_PER_GPU)
            sizes[size] = sizes.get(size, 0.0) + prob
    return sizes


def leftover_waste(
    resolved: ResolvedWorkload, fill: Mapping[int, float] | None = None
) -> NDArray[np.float64]:
    """Per free milli r = 0..1000: the milli of r that arrived sizes leave unfilled.

    Without `fill`: r minus the largest sum of the workload's per-GPU sizes <= r (sizes may repeat;
    whole GPUs count as 1000): 190 milli beside an 810 task wastes 30 when 160-milli tasks arrive,
    130 milli wastes 130 when nothing that small arrives. With `fill` (size -> chance 0..1 that a
    task of that size comes for the sliver, 1 when absent), using size s costs s x (1 - chance): the
    cheapest fill by dynamic programming, so a leftover only unlikely sizes complete counts as waste.
    """
    penalty = [(size, size * (1.0 - (fill or {}).get(size, 1.0))) for size in _share_sizes(resolved)]
    cost = [0.0] * (MILLI_PER_GPU + 1)
    for total in range(1, MILLI_PER_GPU + 1):
        cost[total] = min([float(total)] + [cost[total - s] + pen for s, pen in penalty if s <= total])
    return np.asarray(cost, dtype=np.float64)


def fill_chances(
    resolved: ResolvedWorkload, free_milli: NDArray[np.int64], horizon: float
) -> dict[int, float]:
    """Per share size s: the chance that an open sliver s fits tightly gets an s-task.

    Expected s-tasks over the next `horizon` arrivals (horizon x p_s) over the open slivers (GPUs
    with free milli in [s, the next larger share size)), capped at 1. Online: only the arrived-shape
    histogram and the cluster as it is now are read.
    """
    shares = {size: p for size, p in _share_sizes(resolved).items() if size < MILLI_PER_GPU}
    free = free_milli.ravel()
    free = free[(free > 0) & (free < MILLI_PER_GPU)]
    sizes = sorted(shares)
    chances: dict[int, float] = {}
    for index, size in enumerate(sizes):
        upper = sizes[index + 1] if index + 1 < len(sizes) else MILLI_PER_GPU
        waiting = int(((free >= size) & (free < upper)).sum())
        expected = horizon * shares[size]
        chances[size] = 1.0 if waiting <= expected else expected / waiting
    return chances


class OursScore(FgdScore):
    """FGD points first; among nodes with equal points, the `tiebreak` preference (scaled into [0, 1))."""

    NAME = NAME

    def __init__(
        self,
        model: FragModel,
        tiebreak: str = "none",
        resolution: float = 100,
        tight_gpu: bool = True,
        measure: str = "blend0.5",
        leftover: float = 0.0,
        crowding: float = 0.0,
        crowd_every: int = 256,
        crowd_tolerance: float = 0.0,
    ) -> None:
        super().__init__(model)
        self.tiebreak = tiebreak
        self.resolution = resolution
        self.tight_gpu = tight_gpu
        self.measure = measure
        self.leftover = leftover
        self.crowding = crowding
        self.crowd_every = crowd_every
        self.crowd_tolerance = crowd_tolerance
        self._arrivals = 0
        self._crowd: tuple[int, dict[int, float]] | None = None  # (arrivals when taken, fill per size)
        self._seen_version, self._epoch = -1, 0
        self._waste: tuple[ResolvedWorkload, NDArray[np.float64]] | None = None

    def node_measure(
        self,
        resolved: ResolvedWorkload,
        free: NDArray[np.int64],
        cpu: NDArray[np.int64],
        model: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        """The blended fragmentation plus `leftover` x the unfillable milli of each GPU (milli-GPU)."""
        value = super().node_measure(resolved, free, cpu, model)
        if not self.leftover:
            return value
        if self._waste is None or self._waste[0] is not resolved:
            fill = self._crowd[1] if self._crowd is not None else None
            self._waste = (resolved, leftover_waste(resolved, fill))
        waste = self._waste[1][np.clip(free, 0, MILLI_PER_GPU)].sum(axis=1)
        result: NDArray[np.float64] = value + self.leftover * waste
        return result

    def observe(self, request: Request) -> None:
        super().observe(request)
        self._arrivals += 1

    def cache_version(self, cluster: Cluster) -> int:
        """Bumped on a new target workload and, with `crowding`, whenever the fill chances are
        re-read from the cluster (every `crowd_every` arrivals): cached points then go stale."""
        if self.model.version != self._seen_version:
            self._seen_version, self._epoch = self.model.version, self._epoch + 1
        if self.crowding > 0:
            resolved = self.model.resolved(cluster)
            taken = self._crowd[0] if self._crowd is not None else None
            if resolved is not None and (taken is None or self._arrivals - taken >= self.crowd_every):
                fill = fill_chances(resolved, cluster.gpu_free_milli, self.crowding)
                waste = leftover_waste(resolved, fill)
                self._crowd = (self._arrivals, fill)
                current = self._waste
                # Keep the cached points while no leftover's value moved by `crowd_tolerance` milli
                # or more: dropping every node state's points costs a slow decision per shape.
                if (
                    current is None
                    or current[0] is not resolved
                    or np.abs(current[1] - waste).max() >= self.crowd_tolerance
                ):
                    self._waste, self._epoch = (resolved, waste), self._epoch + 1
        return self._epoch

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        primary = self._points(request, cluster, nodes)
        if self.tiebreak == "none":
            return primary
        secondary = self._secondary(request, cluster, nodes)
        low, high = secondary.min(), secondary.max()
        if high > low:
            primary = primary + 0.999 * (secondary - low) / (high - low)
        return primary

    def _secondary(self, request: Request, cluster: Cluster, nodes: NDArray[np.intp]) -> NDArray[np.float64]:
        """Higher is preferred."""
        gpu_left = (gpu_left_milli(cluster, nodes) - request.total_gpu_milli) / MAX_SPEC_GPU_MILLI
        cpu_left = (cluster.cpu_free_milli[nodes] - request.cpu_milli) / MAX_SPEC_CPU_MILLI
        if self.tiebreak == "bestfit":
            return -(gpu_left + cpu_left)
        if self.tiebreak == "gpu-left":
            return -gpu_left
        if self.tiebreak == "cpu-left":
            return -cpu_left
        if self.tiebreak == "fewest-free":
            free: NDArray[np.float64] = (cluster.gpu_free_milli[nodes] == MILLI_PER_GPU).sum(axis=1) * 1.0
            return -free
        # cpu-balance: keep CPU per free GPU close to the cluster's
        ratio = (cluster.cpu_free_milli[nodes] - request.cpu_milli) / np.maximum(
            gpu_left_milli(cluster, nodes) - request.total_gpu_milli, 1
        )
        target = cluster.cpu_free_milli.sum() / max(int(cluster.gpu_free_milli.sum()), 1)
        result: NDArray[np.float64] = -np.abs(np.log1p(ratio) - np.log1p(target))
        return result
