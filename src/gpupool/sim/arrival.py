"""The arrival stream of BENCHMARK.md §1: seeded shuffle, then inflation to `ratio` of GPU capacity."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.sim.trace import PodTable

INFLATION = 1.3


def arrival_order(
    pods: PodTable, capacity_gpu_milli: int, seed: int, ratio: float = INFLATION
) -> NDArray[np.intp]:
    """Pod indices in submission order.

    Shuffle all pods; below `ratio` x capacity append uniform resamples and stop at the first one
    whose *per-GPU* milli would overshoot (the artifact's quirk); above it, drop random pods.
    """
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(pods)))
    per_gpu = np.asarray(pods.gpu_milli, dtype=np.int64) * (np.asarray(pods.gpus) > 0)
    total_of = per_gpu * np.asarray(pods.gpus, dtype=np.int64)
    target = int(capacity_gpu_milli * ratio)
    demand = int(total_of.sum())
    if demand < target:
        while demand < target:
            pick = int(rng.integers(len(pods)))
            if demand + int(per_gpu[pick]) > target:
                break
            demand += int(total_of[pick])
            order.append(pick)
    else:
        while demand > target and order:
            drop = int(rng.integers(len(order)))
            demand -= int(total_of[order.pop(drop)])
    return np.asarray(order, dtype=np.intp)
