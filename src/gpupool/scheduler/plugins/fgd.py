"""`fgd`: Fragmentation Gradient Descent (ATC'23): the node (and GPU) whose fragmentation grows least.

score = int(100 * sigmoid((F_n(M) - F_n'(M)) / 1000)); the coarse integer score is part of the
method (ties go to the lowest node name). Scores are cached per distinct node state.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.frag import ResolvedWorkload
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.plugins.common import MAX_NODE_SCORE, gang
from gpupool.scheduler.plugins.fragmodel import FragModel, OptionParts, OptionTable, StateTable
from gpupool.scheduler.request import Request

NAME = "fgd"


def points(
    before: NDArray[np.float64], after: NDArray[np.float64], resolution: float = MAX_NODE_SCORE
) -> NDArray[np.float64]:
    """FGD's integer score of a move from fragmentation `before` to `after` (milli-GPU)."""
    return np.floor(resolution / (1.0 + np.exp((after - before) / 1000.0)))


def after_placing(request: Request, free: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Hypothetical free milli after placing the request: (B, options, slots) and which options fit.

    A share of one GPU has one option per slot; whole GPUs take the first fitting slots (one option).
    """
    milli = request.gpu_milli
    if request.gpus == 1 and milli < 1000:
        slots = free.shape[1]
        options = np.repeat(free[:, None, :], slots, axis=1)
        diagonal = np.arange(slots)
        options[:, diagonal, diagonal] -= milli
        return options, free >= milli
    fits = free >= milli if request.gpus else np.zeros_like(free, dtype=np.bool_)
    take = fits & (np.cumsum(fits, axis=1) <= request.gpus)
    return (free - take * milli)[:, None, :], (fits.sum(axis=1) >= request.gpus)[:, None]


class FgdScore:
    """Scores nodes and picks the GPU by the same fragmentation delta."""

    NAME = NAME

    resolution: float = MAX_NODE_SCORE
    measure = "fgd"  # or "capacity", see ResolvedWorkload.capacity_frag
    tight_gpu = False  # among equally good GPUs take the one with least milli free (else lowest index)
    caching = True  # False: every option computed afresh per decision (what tests hold the caches to)

    def __init__(self, model: FragModel) -> None:
        self.model = model
        self.table = StateTable()  # best points per (cache_key, node state), until cache_version changes
        self.parts = OptionTable()  # stable parts per (cache_key, node state, option), until stable_version
        # per cache_key, the option tables of the last nodes ranking computed (node state ids, their
        # free milli per slot, points per option): the pick of the best node reads them
        self._recent: dict[Any, tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]] = {}
        self._recent_stamp: tuple[int, int] = (0, -1)

    def observe(self, request: Request) -> None:
        self.model.observe(request)

    def node_measure(
        self,
        resolved: ResolvedWorkload,
        free: NDArray[np.int64],
        cpu: NDArray[np.int64],
        model: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        """The fragmentation whose change is scored, in milli-GPU; subclasses change it."""
        return resolved.measure(self.measure, free, cpu, model)

    def volatile_measure(
        self, resolved: ResolvedWorkload, free: NDArray[np.int64], cpu: NDArray[np.int64]
    ) -> NDArray[np.float64] | float:
        """A per-node term (of its GPUs' free milli and its free CPU) added to `node_measure` that
        is refreshed more often than the target workload (`cache_version` changes, `stable_version`
        does not); none in FGD.

        The caches keep `node_measure` and `option_cost` across its refreshes and recompute only
        this term, so anything slower than a table lookup per GPU belongs in `node_measure`."""
        del resolved, free, cpu
        return 0.0

    def stable_version(self) -> int:
        """Changes whenever `node_measure` or `option_cost` go stale: a new target workload."""
        return self.model.version

    def stable_parts(
        self,
        request: Request,
        resolved: ResolvedWorkload,
        free: NDArray[np.int64],
        cpu: NDArray[np.int64],
        model: NDArray[np.int64],
        options: tuple[NDArray[np.int64], NDArray[np.bool_]] | None = None,
    ) -> OptionParts:
        """Per node state: `node_measure` before, after each option, and each option's cost.

        Only the distinct options that fit are measured: a share on either of two GPUs with the
        same free milli leaves the same node state. An option that does not fit gets 0 (its points
        are -inf whatever it holds)."""
        before = self.node_measure(resolved, free, cpu, model)
        after_free, valid = options or after_placing(request, free)
        batch, count, slots = after_free.shape
        if count > 1:  # one option per GPU: the first GPU of each free milli stands for the others
            first = (free[:, :, None] == free[:, None, :]).argmax(axis=2)
            rows, columns = np.nonzero((first == np.arange(slots)) & valid)
        else:
            first = np.zeros((batch, 1), dtype=np.intp)
            rows, columns = np.nonzero(valid)
        flat = after_free[rows, columns]
        after_cpu, after_model = cpu[rows] - request.cpu_milli, model[rows]
        measured = self.node_measure(resolved, flat, after_cpu, after_model)
        # the options' state rows repeated once per option (the contract of option_cost)
        cost = self.option_cost(
            request, resolved, (free[rows], cpu[rows], model[rows]), (flat, after_cpu, after_model)
        )
        where = np.full((batch, count), rows.size)  # one past the end: the 0 of an option that does not fit
        where[rows, columns] = np.arange(rows.size)
        where = np.take_along_axis(where, first, axis=1)
        after = np.append(measured, 0.0)[where]
        if isinstance(cost, float) and cost == 0.0:
            return OptionParts(before, after, None)
        spread = np.broadcast_to(np.asarray(cost, dtype=np.float64), (rows.size, 1))[:, 0]
        return OptionParts(before, after, np.append(spread, 0.0)[where])

    def combine(
        self,
        request: Request,
        resolved: ResolvedWorkload,
        free: NDArray[np.int64],
        cpu: NDArray[np.int64],
        parts: OptionParts,
        options: tuple[NDArray[np.int64], NDArray[np.bool_]] | None = None,
    ) -> NDArray[np.float64]:
        """Points per (node state, option) from the stable parts and `volatile_measure` of the
        node states (`free`, `cpu`) and of each option's after-state."""
        after_free, valid = options or after_placing(request, free)
        before, after = parts.before, parts.after
        extra = self.volatile_measure(resolved, free, cpu)
        if not isinstance(extra, float) or extra != 0.0:
            batch, count, slots = after_free.shape
            before = before + extra
            flat = after_free.reshape(batch * count, slots)
            after_cpu = np.repeat(cpu - request.cpu_milli, count)
            after = after + np.reshape(self.volatile_measure(resolved, flat, after_cpu), (batch, count))
        if parts.cost is not None:
            after = after + parts.cost
        return np.where(valid, points(before[:, None], after, self.resolution), -np.inf)

    def option_points(
        self,
        request: Request,
        resolved: ResolvedWorkload,
        free: NDArray[np.int64],
        cpu: NDArray[np.int64],
        model: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        """Points per (node state, option) of the move under `node_measure` + `volatile_measure`
        (plus `option_cost`); -inf where it does not fit. Computed afresh, nothing cached."""
        options = after_placing(request, free)
        parts = self.stable_parts(request, resolved, free, cpu, model, options)
        return self.combine(request, resolved, free, cpu, parts, options)

    def option_cost(
        self,
        request: Request,
        resolved: ResolvedWorkload,
        before: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
        after: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
    ) -> NDArray[np.float64] | float:
        """Milli-GPU added to each option's growth, (node states, options) or a scalar: none in FGD."""
        return 0.0

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        return self._points(request, cluster, nodes)

    def _points(self, request: Request, cluster: Cluster, nodes: NDArray[np.intp]) -> NDArray[np.float64]:
        """Each node's best option, cached per (claim shape, node state)."""
        resolved = self.model.resolved(cluster)
        if resolved is None:
            return np.zeros(nodes.size)
        version = self.cache_version(cluster)  # also what refreshes a subclass's volatile term
        if not self.caching:
            best: NDArray[np.float64] = self._option_table(request, resolved, cluster, nodes).max(axis=1)
            return best

        key = self.cache_key(request)

        def compute(reps: NDArray[np.intp]) -> NDArray[np.float64]:
            table = self._option_table(request, resolved, cluster, reps)
            if self._recent_stamp != self.table.stamp:
                self._recent.clear()
                self._recent_stamp = self.table.stamp
            self._recent[key] = (cluster.state_ids()[reps], cluster.gpu_free_milli[reps], table)
            result: NDArray[np.float64] = table.max(axis=1)
            return result

        return self.table.lookup(key, cluster, nodes, version, compute)

    def _remembered(self, key: Any, cluster: Cluster, node: int) -> NDArray[np.float64] | None:
        """The option table ranking computed for this node's state under the same key and cache
        version, when it was computed on a node whose GPUs hold what this node's hold, slot by slot
        (then it is exactly what computing it again gives)."""
        found = self._recent.get(key)
        if found is None or self._recent_stamp != self.table.stamp:
            return None
        ids, free, table = found
        hits = np.flatnonzero(ids == cluster.state_ids()[node])
        if not hits.size or not np.array_equal(free[hits[0]], cluster.gpu_free_milli[node]):
            return None
        row: NDArray[np.float64] = table[hits[0]]
        return row

    def _option_table(
        self, request: Request, resolved: ResolvedWorkload, cluster: Cluster, nodes: NDArray[np.intp]
    ) -> NDArray[np.float64]:
        """Points per (node, option) of `nodes`, each node's options in its own slot order; the
        stable parts come from `self.parts` (computed once per node state and target workload)."""
        free, cpu = cluster.gpu_free_milli[nodes], cluster.cpu_free_milli[nodes]
        options = after_placing(request, free)
        if not self.caching:
            parts = self.stable_parts(request, resolved, free, cpu, cluster.model_id[nodes], options)
            return self.combine(request, resolved, free, cpu, parts, options)

        def compute(reps: NDArray[np.intp]) -> OptionParts:
            rows = cluster.gpu_free_milli[reps]
            return self.stable_parts(
                request, resolved, rows, cluster.cpu_free_milli[reps], cluster.model_id[reps]
            )

        parts = self.parts.lookup(self.cache_key(request), cluster, nodes, self.stable_version(), compute)
        return self.combine(request, resolved, free, cpu, parts, options)

    def cache_key(self, request: Request) -> Any:
        """What the cached points of a request are keyed by (with the node state)."""
        return request.shape()

    def cache_version(self, cluster: Cluster) -> int:
        """Changes whenever cached points go stale (here: a new target workload)."""
        return self.model.version

    def pick(self, request: Request, cluster: Cluster, node: int, cycle: CycleState) -> tuple[int, ...]:
        """A share: the GPU with the best points (tightest first with `tight_gpu`, else lowest index);
        whole GPUs: the first free ones."""
        resolved = self.model.resolved(cluster)
        slots = cluster.gpu_free_milli.shape[1]
        if resolved is None or request.gpus != 1 or request.whole:
            return gang(request, cluster, node, np.arange(slots))
        table = self._remembered(self.cache_key(request), cluster, node) if self.caching else None
        if table is None:
            table = self._option_table(request, resolved, cluster, np.asarray([node]))[0]
        table = np.where(cluster.fitting_slots(request, node), table, -np.inf)
        if self.tight_gpu:
            best = np.flatnonzero(table == table.max())
            return (int(best[np.argmin(cluster.gpu_free_milli[node, best])]),)
        return (int(np.argmax(table)),)
