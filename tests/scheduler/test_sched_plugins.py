"""Each paper policy on a small cluster: the node (and GPU) it must choose, as a table."""

from __future__ import annotations

import numpy as np
import pytest
from sched_builders import ClusterBuilder, cpu_only, share, whole

from gpupool.scheduler.frag import ResolvedWorkload, TargetWorkload
from gpupool.scheduler.framework import PluginContext
from gpupool.scheduler.profiles import build_scheduler
from gpupool.scheduler.request import Request

# a: empty 8-GPU node; b: one GPU at 300 free; c: 2-GPU node with one GPU used; d: empty 2-GPU node
MIXED = (
    ClusterBuilder()
    .node("a", gpus=8)
    .node("b", gpus=8, used=(700, 1000, 1000, 1000, 1000, 1000, 1000, 0))
    .node("c", gpus=2, cpu=16_000, used=(1000,))
    .node("d", gpus=2, cpu=16_000)
)
WORKLOAD = TargetWorkload(
    ((4_000, 500, 1, None, None), (8_000, 1000, 1, None, None), (2_000, 0, 0, None, None)),
    np.asarray([0.5, 0.3, 0.2]),
)


@pytest.mark.parametrize(
    ("policy", "request_", "node", "gpus"),
    [
        ("bestfit", share(300), "c", (1,)),  # least CPU+GPU leftover
        ("bestfit", whole(1), "c", (1,)),
        ("bestfit", whole(2), "d", (0, 1)),
        ("dotprod", share(300), "c", (1,)),
        ("gpu-packing", share(300), "b", (0,)),
        ("gpu-packing", whole(1), "b", (7,)),
        ("gpu-clustering", whole(1), "c", (1,)),
        ("gpu-clustering", cpu_only(), "a", ()),
        ("fgd", share(300), "b", (0,)),
        ("fgd", whole(2), "a", (0, 1)),  # equal delta on a and d: lowest name
        ("binpack", whole(1), "b", (7,)),
        ("spread", whole(1), "a", (0,)),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_policy_choice(policy: str, request_: Request, node: str, gpus: tuple[int, ...]) -> None:
    cluster = MIXED.build()
    scheduler = build_scheduler(policy, PluginContext(workload=WORKLOAD))
    decision = scheduler.decide(request_, cluster)
    assert decision.status.ok, decision.status.reason
    assert (cluster.node_names[decision.node], decision.gpus) == (node, gpus)


def test_random_is_seeded_and_feasible() -> None:
    picks = []
    for _ in range(2):
        scheduler = build_scheduler("random", PluginContext(seed=7))
        cluster = MIXED.build()
        picks.append([scheduler.schedule(share(600), cluster)[0].node for _ in range(10)])
    assert picks[0] == picks[1]
    assert len(set(picks[0])) > 1


def test_fragmentation_worked_example() -> None:
    """BENCHMARK.md §3.2: GPUs [1000, 300] and 10 cores free -> F_n(M) = 500 milli."""
    cluster = ClusterBuilder().node("n", gpus=2, cpu=10_000, used=(0, 700)).build()
    resolved = ResolvedWorkload.of(WORKLOAD, cluster)
    assert resolved.frag(cluster.gpu_free_milli, cluster.cpu_free_milli, cluster.model_id).tolist() == [500.0]


@pytest.mark.parametrize(
    ("models", "expected"),
    [(None, "a"), (("T4",), "t"), (("V100M16", "T4"), "t")],
    ids=["any", "t4", "list"],
)
def test_model_constraint(models: tuple[str, ...] | None, expected: str) -> None:
    cluster = ClusterBuilder().node("a", model="G2").node("t", model="T4").build()
    decision = build_scheduler("bestfit").decide(share(500, models=models), cluster)
    assert cluster.node_names[decision.node] == expected


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (share(500, models=("A100",)), "no device on model A100 in the pool"),
        (whole(4, models=("T4",)), "no node on model T4 has 4 GPUs"),
        (share(500, cpu=500_000), "no node with 500000 milli-CPU and 1024 MiB memory free"),
    ],
    ids=["unknown-model", "too-few-gpus", "cpu"],
)
def test_reasons(request_: Request, reason: str) -> None:
    cluster = ClusterBuilder().node("a", gpus=2).node("t", gpus=2, model="T4").build()
    assert build_scheduler("fgd").decide(request_, cluster).status.reason == reason


def test_full_gpus_reason() -> None:
    cluster = ClusterBuilder().node("a", gpus=2, used=(1000, 600)).build()
    status = build_scheduler("bestfit").decide(share(500), cluster).status
    assert status.reason == "no device with 500 milli-GPU free"


@pytest.mark.parametrize(
    ("shape", "free", "cpu", "expected"),
    [
        ((4_000, 470, 1, None, None), (0, 0), 10_000, 1060.0),  # CPU runs out after 2 tasks: 2000 - 940
        ((2_000, 470, 1, None, None), (0, 0), 10_000, 120.0),  # 4 tasks fit; 60-milli slivers remain
        ((8_000, 1000, 1, None, None), (0, 0), 10_000, 1000.0),  # one whole GPU stranded by CPU
        ((8_000, 1000, 1, None, None), (0, 300), 20_000, 700.0),  # the partial GPU is no use
        ((2_000, 0, 0, None, None), (0, 0), 10_000, 2000.0),  # CPU-only: all idle GPU, as in FGD
    ],
    ids=["cpu-bound", "slivers", "whole-cpu-bound", "partial", "cpu-only"],
)
def test_capacity_fragmentation(
    shape: tuple[int, int, int, None, None], free: tuple[int, int], cpu: int, expected: float
) -> None:
    cluster = ClusterBuilder().node("n", gpus=2, cpu=cpu, used=free).build()
    resolved = ResolvedWorkload.of(TargetWorkload((shape,), np.asarray([1.0])), cluster)
    measured = resolved.capacity_frag(cluster.gpu_free_milli, cluster.cpu_free_milli, cluster.model_id)
    assert measured.tolist() == [expected]
