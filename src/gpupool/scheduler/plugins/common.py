"""Helpers shared by plugins: GPU totals per node, the default gang choice, NVLink-aware sets."""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.request import Request

MAX_SPEC_CPU_MILLI = 128_000  # FGD artifact normalisation constants
MAX_SPEC_GPU_MILLI = 8_000
MAX_NODE_SCORE = 100
_MAX_COMBINATIONS = 256  # beyond this, NVLink sets are built greedily


def trunc(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Go's int64(x): truncation toward zero, kept as float for weighting."""
    return np.trunc(values)


def gpu_left_milli(cluster: Cluster, nodes: NDArray[np.intp]) -> NDArray[np.int64]:
    """Total free milli-GPU of each node."""
    result: NDArray[np.int64] = cluster.gpu_free_milli[nodes].sum(axis=1)
    return result


def gang(request: Request, cluster: Cluster, node: int, order: NDArray[np.intp]) -> tuple[int, ...]:
    """`request.gpus` fitting slots of `node`, taken in `order`; NVLink-connected sets first when known."""
    fitting = cluster.fitting_slots(request, node)
    ordered = [int(slot) for slot in order if fitting[slot]]
    count = request.gpus
    if count > 1 and cluster.nvlink is not None and len(ordered) > count:
        return nvlink_set(cluster.nvlink[node], ordered, count)
    return tuple(ordered[:count])


def nvlink_set(links: NDArray[np.bool_], candidates: list[int], count: int) -> tuple[int, ...]:
    """The `count` candidates with the most NVLink pairs among them; ties keep the earlier order."""
    options = itertools.combinations(candidates, count)
    if len(candidates) <= 12:
        best: tuple[int, ...] = tuple(candidates[:count])
        best_links = -1
        for tried, option in enumerate(options):
            if tried >= _MAX_COMBINATIONS:
                break
            pairs = int(links[np.ix_(option, option)].sum())
            if pairs > best_links:
                best, best_links = option, pairs
        return tuple(sorted(best))
    chosen = [candidates[0]]
    while len(chosen) < count:
        rest = [slot for slot in candidates if slot not in chosen]
        chosen.append(max(rest, key=lambda slot: (int(links[slot, chosen].sum()), -rest.index(slot))))
    return tuple(sorted(chosen))
