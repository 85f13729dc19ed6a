"""`load-aware`: prefer nodes whose GPUs are least busy by sampled utilization (live telemetry)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.plugins.common import MAX_NODE_SCORE
from gpupool.scheduler.request import Request

NAME = "load-aware"


class LoadAwareScore:
    NAME = NAME

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        if cluster.utilization is None:
            return np.zeros(nodes.size)
        present = cluster.gpu_total_milli[nodes] > 0
        busy = np.where(present, cluster.utilization[nodes], 0.0).sum(axis=1) / np.maximum(
            present.sum(axis=1), 1
        )
        result: NDArray[np.float64] = MAX_NODE_SCORE - np.clip(busy, 0.0, 100.0)
        return result

    def pick(self, request: Request, cluster: Cluster, node: int, cycle: CycleState) -> tuple[int, ...]:
        """The least busy fitting GPUs."""
        from gpupool.scheduler.plugins.common import gang

        load = (
            cluster.utilization[node]
            if cluster.utilization is not None
            else np.zeros(cluster.gpu_free_milli.shape[1])
        )
        return gang(request, cluster, node, np.argsort(load, kind="stable"))
