"""`gpu-packing`: shared GPUs first, then free GPUs on used nodes, then free nodes."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.request import MILLI_PER_GPU, Request

NAME = "gpu-packing"


class GpuPackingScore:
    NAME = NAME

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        if request.gpu_milli <= 0:
            return np.zeros(nodes.size)
        free = cluster.gpu_free_milli[nodes]
        present = cluster.gpu_total_milli[nodes] > 0
        fully_free = ((free == MILLI_PER_GPU) & present).sum(axis=1)
        ordered = np.sort(np.where(present, free, -1), axis=1)  # least milli left first
        fits = ordered >= request.gpu_milli
        used = fits & (np.cumsum(fits, axis=1) <= request.gpus)
        free_used = (used & (ordered == MILLI_PER_GPU)).sum(axis=1)
        shared_left = (np.where(used, ordered, 0) * 100 // MILLI_PER_GPU).sum(axis=1)
        whole_node = np.maximum(33 - fully_free, fully_free)
        free_gpus = np.maximum(50 - free_used, 33)
        shared = np.maximum(100 - shared_left // 10, 50)
        result = np.where(
            fully_free == cluster.gpu_count[nodes], whole_node, np.where(free_used > 0, free_gpus, shared)
        )
        scores: NDArray[np.float64] = result.astype(np.float64)
        return scores
