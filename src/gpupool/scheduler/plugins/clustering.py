"""`gpu-clustering`: put a claim with nodes that host the same kind (shared GPU or k whole GPUs)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import KIND_SLOTS, Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.plugins.common import MAX_NODE_SCORE, MAX_SPEC_GPU_MILLI, gpu_left_milli
from gpupool.scheduler.request import Request

NAME = "gpu-clustering"
QUARTER = MAX_NODE_SCORE // 4


class GpuClusteringScore:
    NAME = NAME

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        if request.gpus == 0:
            return np.zeros(nodes.size)
        fullness = QUARTER * (MAX_SPEC_GPU_MILLI - gpu_left_milli(cluster, nodes))
        base = np.fix(fullness / MAX_SPEC_GPU_MILLI)  # Go integer division truncates toward zero
        hosted = cluster.kind_counts[nodes] > 0
        kinds = hosted.sum(axis=1)
        own = hosted[:, min(request.kind, KIND_SLOTS - 1)]
        bonus = np.where(
            own, np.where(kinds == 1, 3 * QUARTER, 2 * QUARTER), np.where(kinds == 0, QUARTER, 0)
        )
        result: NDArray[np.float64] = (base + bonus).astype(np.float64)
        return result
