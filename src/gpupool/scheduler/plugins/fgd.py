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
from gpupool.scheduler.plugins.fragmodel import FragModel, StateTable
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

    def __init__(self, model: FragModel) -> None:
        self.model = model
        self.table = StateTable()

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

    def option_points(
        self,
        request: Request,
        resolved: ResolvedWorkload,
        free: NDArray[np.int64],
        cpu: NDArray[np.int64],
        model: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        """Points per (node state, option) of the move under `node_measure`; -inf where it does not fit."""
        before = self.node_measure(resolved, free, cpu, model)
        options, valid = after_placing(request, free)
        batch, count, slots = options.shape
        after_free = options.reshape(batch * count, slots)
        after_cpu = np.repeat(cpu - request.cpu_milli, count)
        after_model = np.repeat(model, count)
        after = self.node_measure(resolved, after_free, after_cpu, after_model).reshape(batch, count)
        cost = self.option_cost(request, resolved, (free, cpu, model), (after_free, after_cpu, after_model))
        after = after + cost
        return np.where(valid, points(before[:, None], after, self.resolution), -np.inf)

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

        def compute(reps: NDArray[np.intp]) -> NDArray[np.float64]:
            table = self.option_points(
                request,
                resolved,
                cluster.gpu_free_milli[reps],
                cluster.cpu_free_milli[reps],
                cluster.model_id[reps],
            )
            result: NDArray[np.float64] = table.max(axis=1)
            return result

        version = self.cache_version(cluster)
        return self.table.lookup(self.cache_key(request), cluster, nodes, version, compute)

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
        at = np.asarray([node])
        free = cluster.gpu_free_milli[at]
        cpu, model = cluster.cpu_free_milli[at], cluster.model_id[at]
        table = self.option_points(request, resolved, free, cpu, model)[0]
        table = np.where(cluster.fitting_slots(request, node), table, -np.inf)
        if self.tight_gpu:
            best = np.flatnonzero(table == table.max())
            return (int(best[np.argmin(free[0, best])]),)
        return (int(np.argmax(table)),)
