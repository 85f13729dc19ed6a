"""Run many (policy, seed) replays in worker processes and summarise them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from gpupool.scheduler.frag import TargetWorkload
from gpupool.scheduler.profiles import Profile
from gpupool.sim.engine import RunResult, replay, typical_workload
from gpupool.sim.trace import NodeTable, PodTable, read_nodes, read_pods

MAX_WORKERS = 2


@dataclass(frozen=True)
class Job:
    nodes: Path
    pods: Path
    policy: str | Profile  # a policy name, or a profile built in code (benchmark variants)
    seed: int


@lru_cache(maxsize=4)
def _load(nodes: Path, pods: Path) -> tuple[NodeTable, PodTable, TargetWorkload]:
    pod_table = read_pods(pods)
    return read_nodes(nodes), pod_table, typical_workload(pod_table)


def run_job(job: Job) -> RunResult:
    """One replay; the CSVs are read once per process."""
    nodes, pods, workload = _load(job.nodes, job.pods)
    return replay(nodes, pods, job.policy, job.seed, workload)


def default_workers() -> int:
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def run_jobs(
    jobs: Iterable[Job], workers: int | None = None, on_done: Callable[[RunResult], None] | None = None
) -> list[RunResult]:
    """Run jobs in up to `workers` processes (1 = in this process); results in job order."""
    todo = list(jobs)
    count = workers or default_workers()
    results: dict[int, RunResult] = {}
    if count <= 1 or len(todo) <= 1:
        for index, job in enumerate(todo):
            results[index] = run_job(job)
            if on_done:
                on_done(results[index])
    else:
        with ProcessPoolExecutor(max_workers=count) as pool:
            futures = {pool.submit(run_job, job): index for index, job in enumerate(todo)}
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                if on_done:
                    on_done(results[futures[future]])
    return [results[index] for index in range(len(todo))]


@dataclass(frozen=True)
class Summary:
    """Medians over seeds of one policy on one trace; percentages of GPU capacity, times in ms."""

    policy: str
    seeds: int
    unallocated_pct: dict[int, float]
    allocation_pct_curve: list[float]
    decision_ms_median: float
    decision_ms_p99: float
    replay_s_median: float


def summarise(results: list[RunResult], points: tuple[int, ...] = (100, 130)) -> Summary:
    """Median over the seeds of one policy's results."""
    allocation = np.median(np.stack([r.curves.allocation_pct for r in results]), axis=0)
    times = np.concatenate([r.decision_ms for r in results])
    return Summary(
        policy=results[0].policy,
        seeds=len(results),
        unallocated_pct={p: float(np.median([r.curves.unallocated_at(p) for r in results])) for p in points},
        allocation_pct_curve=[round(float(v), 3) for v in allocation],
        decision_ms_median=float(np.median(times)),
        decision_ms_p99=float(np.percentile(times, 99)),
        replay_s_median=float(np.median([r.wall_s for r in results])),
    )
