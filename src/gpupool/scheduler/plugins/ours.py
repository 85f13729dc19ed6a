"""`ours`: online FGD with coarser points and a packing tie-break.

* the target workload is learned online from arrived claims (nothing is read in advance);
* FGD points are int(40 * sigmoid(delta / 1000)) instead of 100: wider ties, ...
* ... which a packing preference breaks (least GPU left on the node after placing);
* inside the node, among equally good GPUs the tightest one is taken.

See docs/scheduler.md for the idea and the measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.plugins.common import MAX_SPEC_CPU_MILLI, MAX_SPEC_GPU_MILLI, gpu_left_milli
from gpupool.scheduler.plugins.fgd import FgdScore
from gpupool.scheduler.plugins.fragmodel import FragModel
from gpupool.scheduler.request import MILLI_PER_GPU, Request

NAME = "ours"
TIEBREAKS = ("none", "bestfit", "gpu-left", "cpu-left", "fewest-free", "cpu-balance")


def options(args: Mapping[str, Any]) -> dict[str, Any]:
    """Typed arguments of the plugin from a profile's args."""
    tiebreak = str(args.get("tiebreak", "gpu-left"))
    if tiebreak not in TIEBREAKS:
        raise ValueError(f"ours: tiebreak must be one of {TIEBREAKS}, got {tiebreak!r}")
    return {
        "tiebreak": tiebreak,
        "resolution": float(args.get("resolution", 40)),
        "tight_gpu": bool(args.get("tight_gpu", True)),
        "measure": str(args.get("measure", "fgd")),
    }


class OursScore(FgdScore):
    """FGD points first; among nodes with equal points, the `tiebreak` preference (scaled into [0, 1))."""

    NAME = NAME

    def __init__(
        self, model: FragModel, tiebreak: str = "gpu-left", resolution: float = 40, tight_gpu: bool = True,
        measure: str = "fgd",
    ) -> None:
        super().__init__(model)
        self.tiebreak = tiebreak
        self.resolution = resolution
        self.tight_gpu = tight_gpu
        self.measure = measure

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        primary = super().score(request, cluster, nodes, cycle)
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
