"""Canned plugins to test the framework apart from real policies."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.request import Request
from gpupool.scheduler.status import SUCCESS, Status, unschedulable


class AlwaysPass:
    NAME = "always-pass"

    def filter(
        self, request: Request, cluster: Cluster, cycle: CycleState
    ) -> tuple[NDArray[np.bool_], Status]:
        return np.ones(cluster.size, dtype=np.bool_), SUCCESS


class AlwaysFail:
    NAME = "always-fail"
    REASON = "fake filter refuses every node"

    def filter(
        self, request: Request, cluster: Cluster, cycle: CycleState
    ) -> tuple[NDArray[np.bool_], Status]:
        return np.zeros(cluster.size, dtype=np.bool_), unschedulable(self.REASON, self.NAME)


class OnlyNodes:
    NAME = "only-nodes"

    def __init__(self, *nodes: int) -> None:
        self.nodes = nodes

    def filter(
        self, request: Request, cluster: Cluster, cycle: CycleState
    ) -> tuple[NDArray[np.bool_], Status]:
        mask = np.zeros(cluster.size, dtype=np.bool_)
        mask[list(self.nodes)] = True
        return mask, SUCCESS


class FixedScore:
    NAME = "fixed-score"

    def __init__(self, scores: list[float]) -> None:
        self.scores = np.asarray(scores, dtype=np.float64)
        self.seen: list[list[int]] = []

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        self.seen.append([int(node) for node in nodes])
        result: NDArray[np.float64] = self.scores[nodes]
        return result


class FirstSlots:
    NAME = "first-slots"

    def pick(self, request: Request, cluster: Cluster, node: int, cycle: CycleState) -> tuple[int, ...]:
        return tuple(range(request.gpus))
