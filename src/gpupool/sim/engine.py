"""One replay: a trace, a policy, a seed -> per-pod samples, curves and decision times."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.frag import TargetWorkload
from gpupool.scheduler.framework import PluginContext
from gpupool.scheduler.profiles import Profile, build_scheduler
from gpupool.sim.arrival import arrival_order
from gpupool.sim.metrics import Curves, FragTracker, bucketize
from gpupool.sim.trace import NodeTable, PodTable


@dataclass(frozen=True)
class RunResult:
    """The outcome of one replay; times in seconds and milliseconds as named."""

    policy: str
    seed: int
    curves: Curves
    pods: int
    failed: int
    decision_ms: NDArray[np.float64]
    wall_s: float
    # CPU time of the deciding thread per decision: unlike wall time it leaves out the time other
    # processes held the core, which dominates wall-time tails on a shared machine
    decision_cpu_ms: NDArray[np.float64] | None = None


def typical_workload(pods: PodTable) -> TargetWorkload:
    """FGD's target workload: the typical pods of the original trace (BENCHMARK.md §3.2)."""
    return TargetWorkload.typical([pods.shape(index) for index in range(len(pods))])


def replay(
    nodes: NodeTable,
    pods: PodTable,
    policy: str | Profile,
    seed: int,
    workload: TargetWorkload | None = None,
) -> RunResult:
    """Schedule the seeded arrival stream one pod at a time, no departures, failed pods skipped."""
    started = time.perf_counter()
    target = workload or typical_workload(pods)
    cluster = nodes.cluster()
    scheduler = build_scheduler(policy, PluginContext(workload=target, seed=seed))
    tracker = FragTracker(cluster, target)
    capacity = cluster.total_gpu_milli
    order = arrival_order(pods, capacity, seed)
    requests = [pods.request(index) for index in range(len(pods))]
    count = order.size
    arrived = np.zeros(count, dtype=np.int64)
    used = np.zeros(count, dtype=np.int64)
    frag = np.zeros(count, dtype=np.float64)
    decision_ms = np.zeros(count, dtype=np.float64)
    decision_cpu_ms = np.zeros(count, dtype=np.float64)
    arrived_milli = used_milli = failed = 0
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for step, index in enumerate(order):
        request = requests[index]
        tick, cpu_tick = clock(), cpu_clock()
        _, allocation = scheduler.schedule(request, cluster)
        decision_ms[step] = (clock() - tick) / 1e6
        decision_cpu_ms[step] = (cpu_clock() - cpu_tick) / 1e6
        arrived_milli += request.total_gpu_milli
        if allocation is None:
            failed += 1
        else:
            used_milli += sum(allocation.gpu_milli)
            for node in scheduler.touched:  # the placed node, plus any a second pass moved claims to
                tracker.update(node)
        arrived[step], used[step], frag[step] = arrived_milli, used_milli, tracker.total
    curves = bucketize(arrived, used, frag, capacity)
    name = policy if isinstance(policy, str) else policy.name
    wall = time.perf_counter() - started
    return RunResult(name, seed, curves, count, failed, decision_ms, wall, decision_cpu_ms)
