"""`random`: one feasible node, drawn uniformly, scores 100; the GPU is drawn among fitting ones."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.plugins.common import MAX_NODE_SCORE, gang
from gpupool.scheduler.request import Request

NAME = "random"


class RandomScore:
    NAME = NAME

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        scores = np.zeros(nodes.size)
        scores[self.rng.integers(nodes.size)] = MAX_NODE_SCORE
        return scores

    def pick(self, request: Request, cluster: Cluster, node: int, cycle: CycleState) -> tuple[int, ...]:
        """Whole GPUs: the first free ones; a share: a random fitting GPU."""
        if request.whole or request.gpus > 1:
            return gang(request, cluster, node, np.arange(cluster.gpu_free_milli.shape[1]))
        fitting = np.flatnonzero(cluster.fitting_slots(request, node))
        return (int(fitting[self.rng.integers(fitting.size)]),)
