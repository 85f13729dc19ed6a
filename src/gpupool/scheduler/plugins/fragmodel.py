"""The target workload a fragmentation score measures against, and caches keyed by node state.

Offline (simulator, as the FGD paper): the trace's typical pods, fixed. Online (live pool, ours):
a decaying histogram of arrived claims, first read after `warmup` arrivals (no fragmentation
score before: the tie-break alone decides), then re-read every `refresh_every` arrivals (and at
powers of two while young), adopted only when it moved more than `drift` (total variation) from
the one in use. Every adoption empties the caches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
SMALL = 32  # below this many ids a dict beats np.unique's sort and its fixed cost


def first_of_each(ids: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.intp]]:
    """The distinct ids in ascending order and where each first occurs: np.unique(ids,
    return_index=True), without its fixed cost for the few ids of a small pool's decision."""
    if ids.size > SMALL:
        unique, first = np.unique(ids, return_index=True)
        return unique, first
    seen: dict[int, int] = {}
    for index, value in enumerate(ids.tolist()):
        seen.setdefault(value, index)
    order = sorted(seen)
    return np.asarray(order, dtype=ids.dtype), np.asarray([seen[v] for v in order], dtype=np.intp)


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
            unique, first = first_of_each(ids[missing])
            table[unique] = compute(nodes[missing][first])
            values = table[ids]
        return values

    def _check(self, interner: StateInterner, version: int) -> None:
        stamp = (id(interner), version)
        if stamp != self.stamp:
            self.tables.clear()
            self.stamp = stamp


@dataclass(frozen=True)
class OptionParts:
    """What a move's points are made of, per node state (rows) and option (columns): the measure
    before (rows,), after each option (rows, options), and each option's cost (None: none)."""

    before: NDArray[np.float64]
    after: NDArray[np.float64]
    cost: NDArray[np.float64] | None


PartsCompute = Callable[[NDArray[np.intp]], OptionParts]
MAX_ROWS = 1 << 14  # node states one key of an OptionTable keeps (about 3 MB with 8 GPUs a node)


@dataclass
class _Rows:
    """One key's stored parts: row per node state id (-1: none); options in the slot order of the
    node they were computed on (`free`: that node's free milli per slot)."""

    row: NDArray[np.int64]
    free: NDArray[np.int64]
    before: NDArray[np.float64]
    after: NDArray[np.float64]
    cost: NDArray[np.float64] | None = None
    used: int = 0


class OptionTable:
    """`OptionParts` per (key, node state id), computed once per distinct node state.

    A share's options are its GPUs, and an option's parts depend only on the node state and that
    GPU's free milli: a node whose GPUs are in another order than the node the parts were computed
    on gets them permuted (matched by free milli). Valid only for parts that depend on a node's
    model, CPU free and per-GPU free multiset (and the version they were computed under).
    """

    def __init__(self) -> None:
        self.keys: dict[Any, _Rows] = {}
        self.stamp: tuple[int, int] = (0, -1)

    def lookup(
        self, key: Any, cluster: Cluster, nodes: NDArray[np.intp], version: int, compute: PartsCompute
    ) -> OptionParts:
        """The parts of `nodes`; `compute(representative_nodes)` fills the missing states."""
        stamp = (id(cluster.interner), version)
        if stamp != self.stamp:
            self.keys.clear()
            self.stamp = stamp
        if not nodes.size:
            return compute(nodes)
        ids = cluster.state_ids()[nodes]
        table = self.keys.get(key)
        if table is not None and table.row.size <= int(ids.max()):
            grown = np.full(int(ids.max()) * 2 + 64, -1, dtype=np.int64)
            grown[: table.row.size] = table.row
            table.row = grown
        rows = table.row[ids] if table is not None else np.full(ids.size, -1, dtype=np.int64)
        missing = rows < 0
        if table is not None and table.used + int(missing.sum()) > MAX_ROWS:
            # a live pool meets new node states for as long as it runs: a full key starts over
            table.row[:] = -1
            table.used = 0
            rows[:] = -1
            missing[:] = True
        if missing.any():
            unique, first = first_of_each(ids[missing])
            reps = nodes[missing][first]
            fresh = compute(reps)
            if table is None:
                table = self.keys[key] = _Rows(
                    np.full(int(ids.max()) * 2 + 64, -1, dtype=np.int64),
                    np.empty((0, cluster.gpu_free_milli.shape[1]), dtype=np.int64),
                    np.empty(0),
                    np.empty((0, fresh.after.shape[1])),
                )
            _store(table, unique, cluster.gpu_free_milli[reps], fresh)
            if unique.size == ids.size:  # every node is its own representative
                return fresh if np.array_equal(reps, nodes) else _rows_of(fresh, np.searchsorted(unique, ids))
            rows = table.row[ids]
        assert table is not None
        parts = OptionParts(
            table.before[rows], table.after[rows], None if table.cost is None else table.cost[rows]
        )
        if parts.after.shape[1] == 1:
            return parts
        free = cluster.gpu_free_milli[nodes]
        moved = np.flatnonzero((table.free[rows] != free).any(axis=1))
        if moved.size:  # same state, GPUs in another order: match the options by free milli
            stored = np.argsort(table.free[rows[moved]], axis=1, kind="stable")
            own = np.argsort(free[moved], axis=1, kind="stable")
            for values in (parts.after, parts.cost):
                if values is not None:
                    sorted_values = np.take_along_axis(values[moved], stored, axis=1)
                    permuted = values[moved]
                    np.put_along_axis(permuted, own, sorted_values, axis=1)
                    values[moved] = permuted
        return parts


def _rows_of(parts: OptionParts, index: NDArray[np.intp]) -> OptionParts:
    return OptionParts(
        parts.before[index], parts.after[index], None if parts.cost is None else parts.cost[index]
    )


def _store(table: _Rows, ids: NDArray[np.int64], free: NDArray[np.int64], fresh: OptionParts) -> None:
    """Append the parts of node states `ids` (computed on nodes whose slots hold `free`)."""
    start, stop = table.used, table.used + ids.size
    if stop > table.before.size:
        size = max(stop * 2, 64)
        table.free = _grown(table.free, size)
        table.before = _grown(table.before, size)
        table.after = _grown(table.after, size)
        if table.cost is not None:
            table.cost = _grown(table.cost, size)
    if fresh.cost is not None and table.cost is None:
        table.cost = np.zeros_like(table.after)  # rows stored without a cost had none: 0 adds nothing
    table.free[start:stop] = free
    table.before[start:stop] = fresh.before
    table.after[start:stop] = fresh.after
    if table.cost is not None:
        table.cost[start:stop] = 0.0 if fresh.cost is None else fresh.cost
    table.row[ids] = np.arange(start, stop)
    table.used = stop


def _grown(values: NDArray[Any], size: int) -> NDArray[Any]:
    grown = np.empty((size, *values.shape[1:]), dtype=values.dtype)
    grown[: values.shape[0]] = values
    return grown
