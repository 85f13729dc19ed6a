"""`ours`: FGD's greedy step over a better fragmentation measure, learned online.

* the target workload is a histogram of the claims that have arrived (nothing read in advance);
* the measure blends FGD's F_n(M) with a *capacity* fragmentation (the idle milli-GPU left over if
  the node were filled with tasks of each shape: per-GPU slivers after packing, CPU that runs out
  before the GPUs), see `ResolvedWorkload.capacity_frag`;
* plus a *leftover* term: per GPU, the milli that no combination of the arrived share sizes can
  fill (free minus the largest sum of workload GPU sizes that fits), weighted by `leftover`; it
  steers shares towards complementary partners (650 + 320, 810 + 160) and away from leftovers
  that nothing fills, see `leftover_waste`;
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
from gpupool.scheduler.plugins.fgd import FgdScore, after_placing, points
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
    }


def leftover_waste(resolved: ResolvedWorkload) -> NDArray[np.float64]:
    """Per free milli r = 0..1000: r minus the largest sum of the workload's per-GPU sizes <= r.

    Sizes may repeat (unbounded); whole-GPU shapes count as 1000. 190 milli beside an 810 task
    wastes 30 when 160-milli tasks arrive; 130 milli wastes 130 when nothing that small arrives.
    """
    wl = resolved.workload
    pairs = zip(wl.gpu_milli.tolist(), wl.gpus.tolist(), strict=True)
    sizes = sorted({min(milli, MILLI_PER_GPU) for milli, gpus in pairs if gpus >= 1 and milli > 0})
    reach = [True] + [False] * MILLI_PER_GPU
    for total in range(1, MILLI_PER_GPU + 1):
        reach[total] = any(size <= total and reach[total - size] for size in sizes)
    span = np.arange(MILLI_PER_GPU + 1)
    filled = np.maximum.accumulate(np.where(np.asarray(reach), span, 0))
    waste: NDArray[np.float64] = (span - filled).astype(np.float64)
    return waste


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
    ) -> None:
        super().__init__(model)
        self.tiebreak = tiebreak
        self.resolution = resolution
        self.tight_gpu = tight_gpu
        self.measure = measure
        self.leftover = leftover
        self._waste: tuple[ResolvedWorkload, NDArray[np.float64]] | None = None

    def node_measure(
        self,
        resolved: ResolvedWorkload,
        free: NDArray[np.int64],
        cpu: NDArray[np.int64],
        model: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        """The blended fragmentation plus `leftover` x the unfillable milli of each GPU (milli-GPU)."""
        value = resolved.measure(self.measure, free, cpu, model)
        if not self.leftover:
            return value
        if self._waste is None or self._waste[0] is not resolved:
            self._waste = (resolved, leftover_waste(resolved))
        waste = self._waste[1][np.clip(free, 0, MILLI_PER_GPU)].sum(axis=1)
        result: NDArray[np.float64] = value + self.leftover * waste
        return result

    def option_points(
        self,
        request: Request,
        resolved: ResolvedWorkload,
        free: NDArray[np.int64],
        cpu: NDArray[np.int64],
        model: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        """Points per (node state, option) of the move under `node_measure`; -inf where it does not fit."""
        before = self.node_measure(resolved, free, cpu, model)
        options, valid = after_placing(request, free)
        batch, count, slots = options.shape
        after = self.node_measure(
            resolved,
            options.reshape(batch * count, slots),
            np.repeat(cpu - request.cpu_milli, count),
            np.repeat(model, count),
        ).reshape(batch, count)
        return np.where(valid, points(before[:, None], after, self.resolution), -np.inf)

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
