"""`bestfit`: the least weighted leftover (CPU and GPU, half each) wins; min-max normalised in integers."""

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

NAME = "bestfit"


def normalize(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    """The artifact's integer min-max scaling to 0..100 (all 0 when every score is equal)."""
    low, high = scores.min(), scores.max()
    if high == low:
        return np.zeros_like(scores)
    scaled: NDArray[np.float64] = np.floor((scores - low) * MAX_NODE_SCORE / (high - low))
    return scaled


class BestFitScore:
    NAME = NAME

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        cpu = (cluster.cpu_free_milli[nodes] - request.cpu_milli) / MAX_SPEC_CPU_MILLI
        gpu = (gpu_left_milli(cluster, nodes) - request.total_gpu_milli) / MAX_SPEC_GPU_MILLI
        return normalize(trunc((1.0 - (0.5 * cpu + 0.5 * gpu)) * MAX_NODE_SCORE))
