"""`dotprod` (Tetris-like): the smallest dot product of node free and pod request wins (packing)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.plugins.common import (
    MAX_NODE_SCORE,
    MAX_SPEC_CPU_MILLI,
    MAX_SPEC_GPU_MILLI,
    gpu_left_milli,
    trunc,
)
from gpupool.scheduler.request import Request

NAME = "dotprod"


class DotProdScore:
    NAME = NAME

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        cpu = cluster.cpu_free_milli[nodes] / MAX_SPEC_CPU_MILLI * (request.cpu_milli / MAX_SPEC_CPU_MILLI)
        gpu = (
            gpu_left_milli(cluster, nodes)
            / MAX_SPEC_GPU_MILLI
            * (request.total_gpu_milli / MAX_SPEC_GPU_MILLI)
        )
        return trunc(MAX_NODE_SCORE * (1.0 - (cpu + gpu) / 2.0))
