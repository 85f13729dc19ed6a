"""The target workload a fragmentation score measures against, and caches keyed by node state.

Offline (simulator, as the FGD paper): the trace's typical pods, fixed. Online (live pool, ours):
a decaying histogram of arrived claims, first read after `warmup` arrivals (no fragmentation
score before: the tie-break alone decides), then re-read every `refresh_every` arrivals (and at
powers of two while young), adopted only when it moved more than `drift` (total variation) from
the one in use. Every adoption empties the caches.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster, StateInterner
from gpupool.scheduler.frag import OnlineWorkload, ResolvedWorkload, TargetWorkload
from gpupool.scheduler.request import Request


class FragModel:
    """Holds the target workload (fixed or learned online) resolved for the current cluster."""

    def __init__(
        self,
        fixed: TargetWorkload | None = None,
        half_life: float = 0.0,
        refresh_every: int = 256,
        warmup: int = 1,
        drift: float = 0.0,
        threshold: float = 0.95,
    ) -> None:
        self.fixed = fixed
        self.online = None if fixed is not None else OnlineWorkload(half_life, threshold)
        self.refresh_every = refresh_every
        self.warmup = warmup
        self.drift = drift
        self.version = 0
        self._workload = fixed
        self._resolved: ResolvedWorkload | None = None
        self._vocabulary: tuple[str, ...] = ()

    def observe(self, request: Request) -> None:
        """Learn one arrival (online mode only)."""
        if self.online is None:
            return
        self.online.observe(request.shape())
        arrivals = self.online.arrivals
        if arrivals < self.warmup:
            return
        young = arrivals < self.refresh_every and arrivals & (arrivals - 1) == 0
        if young or arrivals == self.warmup or arrivals % self.refresh_every == 0:
            fresh = self.online.snapshot()
            if (
                young
                or fresh is None
                or self._workload is None
                or distance(fresh, self._workload) > self.drift
            ):
                self._workload = fresh
                self._resolved = None
                self.version += 1

    def resolved(self, cluster: Cluster) -> ResolvedWorkload | None:
        """The workload with model constraints resolved for this cluster; None before any arrival."""
        if self._workload is None:
            return None
        vocabulary = tuple(cluster.models)
        if self._resolved is None or vocabulary != self._vocabulary:
            self._resolved = ResolvedWorkload.of(self._workload, cluster)
            self._vocabulary = vocabulary
        return self._resolved


def distance(first: TargetWorkload, second: TargetWorkload) -> float:
    """Total variation distance between two shape distributions, 0..1."""
    a = dict(zip(first.shapes, first.probs.tolist(), strict=True))
    b = dict(zip(second.shapes, second.probs.tolist(), strict=True))
    return 0.5 * float(sum(abs(a.get(key, 0.0) - b.get(key, 0.0)) for key in a.keys() | b.keys()))


Compute = Callable[[NDArray[np.intp]], NDArray[np.float64]]


class StateTable:
    """Values per (key, node state id), computed once per distinct node state.

    Valid only for values that depend on a node's model, CPU free and per-GPU free multiset.
    """

    def __init__(self) -> None:
        self.tables: dict[Any, NDArray[np.float64]] = {}
        self.stamp: tuple[int, int] = (0, -1)

    def lookup(
        self, key: Any, cluster: Cluster, nodes: NDArray[np.intp], version: int, compute: Compute
    ) -> NDArray[np.float64]:
        """Cached values for `nodes`; `compute(representative_nodes)` fills the missing states."""
        self._check(cluster.interner, version)
        ids = cluster.state_ids()[nodes]
        table = self.tables.get(key)
        need = int(ids.max()) + 1 if ids.size else 0
        if table is None or table.size < need:
            grown = np.full(max(need * 2, 64), np.nan)
            if table is not None:
                grown[: table.size] = table
            table = self.tables[key] = grown
        values = table[ids]
        missing = np.isnan(values)
        if missing.any():
            unique, first = np.unique(ids[missing], return_index=True)
            table[unique] = compute(nodes[missing][first])
            values = table[ids]
        return values

    def _check(self, interner: StateInterner, version: int) -> None:
        stamp = (id(interner), version)
        if stamp != self.stamp:
            self.tables.clear()
            self.stamp = stamp
