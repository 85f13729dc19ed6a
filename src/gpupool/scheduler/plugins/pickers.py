"""GPU pickers inside the chosen node: `first` (index order) and `best` (least milli left that fits)."""

from __future__ import annotations

import numpy as np

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.plugins.common import gang
from gpupool.scheduler.request import Request

FIRST = "first"
BEST = "best"


class FirstPicker:
    NAME = FIRST

    def pick(self, request: Request, cluster: Cluster, node: int, cycle: CycleState) -> tuple[int, ...]:
        return gang(request, cluster, node, np.arange(cluster.gpu_free_milli.shape[1]))


class BestPicker:
    """Open-Gpu-Share `best`: whole GPUs in index order; a share on the tightest fitting GPU."""

    NAME = BEST

    def pick(self, request: Request, cluster: Cluster, node: int, cycle: CycleState) -> tuple[int, ...]:
        if request.whole:
            return gang(request, cluster, node, np.arange(cluster.gpu_free_milli.shape[1]))
        return gang(request, cluster, node, np.argsort(cluster.gpu_free_milli[node], kind="stable"))
