"""`binpack` and `spread` (after KAI gpupack/gpuspread): they differ by one line, used vs 1 - used."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.plugins.common import MAX_NODE_SCORE
from gpupool.scheduler.request import Request

BINPACK = "binpack"
SPREAD = "spread"


def used_fraction(cluster: Cluster, nodes: NDArray[np.intp]) -> NDArray[np.float64]:
    """Share of a node's GPU capacity in use, 0..1: compute and (when modelled) memory averaged."""
    total = np.maximum(cluster.gpu_total_milli[nodes].sum(axis=1), 1)
    used: NDArray[np.float64] = 1.0 - cluster.gpu_free_milli[nodes].sum(axis=1) / total
    mem_total = cluster.gpu_mem_total_bytes[nodes].sum(axis=1)
    if mem_total.any():
        mem_used = 1.0 - cluster.gpu_mem_free_bytes[nodes].sum(axis=1) / np.maximum(mem_total, 1)
        used = (used + mem_used) / 2.0
    return used


class BinPackScore:
    """Fuller nodes first, so whole nodes stay free for big claims."""

    NAME = BINPACK

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        return MAX_NODE_SCORE * used_fraction(cluster, nodes)


class SpreadScore:
    """Emptier nodes first, so claims interfere less."""

    NAME = SPREAD

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        return MAX_NODE_SCORE * (1.0 - used_fraction(cluster, nodes))
