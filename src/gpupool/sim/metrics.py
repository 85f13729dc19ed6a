"""Per-pod cluster samples and the artifact's post-processing into integer arrived-% buckets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.frag import ResolvedWorkload, TargetWorkload
from gpupool.scheduler.plugins.fragmodel import StateTable

BUCKETS = 131  # arrived % = 0..130


class FragTracker:
    """Cluster fragmentation F(M) in milli-GPU, updated for the one node that changed."""

    def __init__(self, cluster: Cluster, workload: TargetWorkload) -> None:
        self.cluster = cluster
        self.resolved = ResolvedWorkload.of(workload, cluster)
        self.table = StateTable()
        self.node_frag = self._lookup(np.arange(cluster.size))
        self.total = float(self.node_frag.sum())

    def _lookup(self, nodes: NDArray[np.intp]) -> NDArray[np.float64]:
        cluster = self.cluster

        def compute(reps: NDArray[np.intp]) -> NDArray[np.float64]:
            return self.resolved.frag(
                cluster.gpu_free_milli[reps], cluster.cpu_free_milli[reps], cluster.model_id[reps]
            )

        return self.table.lookup("frag", cluster, nodes, 0, compute)

    def update(self, node: int) -> float:
        """Re-measure `node`; returns the cluster total."""
        value = float(self._lookup(np.asarray([node]))[0])
        self.total += value - self.node_frag[node]
        self.node_frag[node] = value
        return self.total


@dataclass(frozen=True)
class Curves:
    """Per arrived-% bucket (0..130): allocation ratio, fragmentation amount and rate, all in %."""

    allocation_pct: NDArray[np.float64]
    frag_pct: NDArray[np.float64]
    frag_rate_pct: NDArray[np.float64]

    def unallocated_at(self, arrived_pct: int) -> float:
        return float(100.0 - self.allocation_pct[arrived_pct])


def bucketize(
    arrived_milli: NDArray[np.int64],
    used_milli: NDArray[np.int64],
    frag_milli: NDArray[np.float64],
    capacity_milli: int,
) -> Curves:
    """Mean of the per-pod samples whose round(arrived %) is x; an empty x takes x-1 (else x+1).

    Percent values; arrived beyond 130 % is dropped."""
    x = np.rint(arrived_milli / capacity_milli * 100).astype(np.int64)
    keep = x < BUCKETS
    x = x[keep]
    counts = np.bincount(x, minlength=BUCKETS).astype(np.float64)
    idle = capacity_milli - used_milli[keep]
    rate = np.where(idle > 0, frag_milli[keep] / np.maximum(idle, 1), 0.0)
    columns = []
    for values in (used_milli[keep] / capacity_milli, frag_milli[keep] / capacity_milli, rate):
        sums: NDArray[np.float64] = np.bincount(x, weights=values, minlength=BUCKETS).astype(np.float64)
        columns.append(_fill(sums, counts) * 100.0)
    return Curves(*columns)


def _fill(sums: NDArray[np.float64], counts: NDArray[np.float64]) -> NDArray[np.float64]:
    means = np.divide(sums, counts, out=np.full_like(sums, np.nan), where=counts > 0)
    filled = means.copy()
    for index in (int(i) for i in np.flatnonzero(counts == 0)):
        below = means[index - 1] if index > 0 else np.nan
        above = means[index + 1] if index + 1 < means.size else np.nan
        filled[index] = below if not np.isnan(below) else above
    # wider gaps (only in tiny traces) carry the nearest earlier value, else the next one
    for index in range(1, filled.size):
        if np.isnan(filled[index]):
            filled[index] = filled[index - 1]
    for index in range(filled.size - 2, -1, -1):
        if np.isnan(filled[index]):
            filled[index] = filled[index + 1]
    return filled
