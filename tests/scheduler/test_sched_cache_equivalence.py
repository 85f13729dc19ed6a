"""The FGD/ours caches and fast paths are speed only: they decide exactly what computing afresh decides.

Held against the straightforward computations: every option of every node measured on its own,
the measures by their per-GPU formulas, and a scheduler whose score computes every node's options
afresh for every decision (`caching = False`), on a slice of a real trace.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sched_builders import ClusterBuilder, share

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.frag import ResolvedWorkload, TargetWorkload
from gpupool.scheduler.framework import PluginContext, Scheduler
from gpupool.scheduler.plugins import fragmodel
from gpupool.scheduler.plugins.fgd import FgdScore, after_placing, points
from gpupool.scheduler.plugins.fragmodel import FragModel
from gpupool.scheduler.plugins.ours import OursScore
from gpupool.scheduler.profiles import Profile, build_scheduler, resolve
from gpupool.scheduler.request import Request
from gpupool.sim.engine import typical_workload
from gpupool.sim.trace import NodeTable, PodTable, read_nodes, read_pods

CSV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "alibaba-gpu-v2023" / "csv"
needs_data = pytest.mark.skipif(
    not (CSV / "openb_pod_list_default.csv").is_file(), reason="shared openb data not present"
)

WORKLOAD = TargetWorkload(
    (
        (8_000, 1000, 1, None, None),
        (16_000, 1000, 2, None, None),
        (4_000, 810, 1, None, None),
        (4_000, 500, 1, ("G2",), None),
        (4_000, 160, 1, None, None),
        (2_000, 0, 0, None, None),
    ),
    np.asarray([0.3, 0.1, 0.3, 0.1, 0.1, 0.1]),
)


def frag_reference(
    resolved: ResolvedWorkload, free: NDArray[np.int64], cpu: NDArray[np.int64], model: NDArray[np.int64]
) -> NDArray[np.float64]:
    """F_n(M) by its per-GPU formula (FGD, BENCHMARK.md section 3)."""
    wl = resolved.workload
    fit = free[:, :, None] >= wl.gpu_milli[None, None, :]
    satisfied = (
        (fit.sum(axis=1) >= wl.gpus)
        & (cpu[:, None] >= wl.cpu_milli)
        & resolved.allowed[:, model].T
        & (wl.gpu_milli > 0)
    )
    small = (free[:, :, None] * ~fit).sum(axis=1).astype(np.float64)
    per_shape = np.where(satisfied, small, free.sum(axis=1).astype(np.float64)[:, None])
    result: NDArray[np.float64] = per_shape @ wl.probs
    return result


def usable_reference(
    resolved: ResolvedWorkload, free: NDArray[np.int64], cpu: NDArray[np.int64], model: NDArray[np.int64]
) -> NDArray[np.float64]:
    """The milli each shape fills at once, GPU by GPU (packing) and CPU first."""
    wl = resolved.workload
    rows = []
    for node in range(free.shape[0]):
        row = []
        for m in range(len(wl.shapes)):
            milli, gpus, cpu_m = int(wl.gpu_milli[m]), int(wl.gpus[m]), int(wl.cpu_milli[m])
            per_gpu = [int(f >= milli) if milli >= 1000 else f // max(milli, 1) for f in free[node].tolist()]
            tasks = sum(per_gpu) // max(gpus, 1)
            if cpu_m > 0:
                tasks = min(tasks, int(cpu[node]) // cpu_m)
            if not resolved.allowed[m, model[node]] or milli <= 0:
                tasks = 0
            row.append(min(float(tasks * milli * gpus), float(free[node].sum())))
        rows.append(row)
    return np.asarray(rows, dtype=np.float64).reshape(free.shape[0], len(wl.shapes))


def random_states(seed: int, count: int = 64) -> tuple[Cluster, NDArray[np.int64], NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    builder = ClusterBuilder().node("a", model="G2").node("b", model="T4")
    cluster = builder.build()
    choices = np.asarray([0, 0, 90, 160, 190, 320, 500, 810, 1000, 1000])
    free = rng.choice(choices, size=(count, 8)).astype(np.int64)
    cpu = rng.choice(np.asarray([0, 2_000, 4_000, 7_000, 64_000]), size=count).astype(np.int64)
    return cluster, free, cpu


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_measures_match_their_per_gpu_formulas(seed: int) -> None:
    cluster, free, cpu = random_states(seed)
    resolved = ResolvedWorkload.of(WORKLOAD, cluster)
    model = np.arange(free.shape[0]) % 2
    # moves that do not fit go negative, and the table's fallback covers values outside it
    for rows in (free, free - 320, free * 3 - 2000):
        assert np.array_equal(resolved.frag(rows, cpu, model), frag_reference(resolved, rows, cpu, model))
        assert np.array_equal(resolved.usable(rows, cpu, model), usable_reference(resolved, rows, cpu, model))
        idle = rows.sum(axis=1).astype(np.float64)
        capacity = (idle[:, None] - usable_reference(resolved, rows, cpu, model)) @ WORKLOAD.probs
        assert np.array_equal(resolved.capacity_frag(rows, cpu, model), capacity)


def every_option_reference(
    scorer: FgdScore, request: Request, resolved: ResolvedWorkload, cluster: Cluster, nodes: NDArray[np.intp]
) -> NDArray[np.float64]:
    """Points of every option, each after-state measured in full (no option skipped or shared)."""
    free, cpu, model = cluster.gpu_free_milli[nodes], cluster.cpu_free_milli[nodes], cluster.model_id[nodes]
    before = scorer.node_measure(resolved, free, cpu, model) + scorer.volatile_measure(resolved, free, cpu)
    options, valid = after_placing(request, free)
    batch, count, slots = options.shape
    flat = options.reshape(batch * count, slots)
    after_cpu, after_model = np.repeat(cpu - request.cpu_milli, count), np.repeat(model, count)
    after = scorer.node_measure(resolved, flat, after_cpu, after_model) + scorer.volatile_measure(
        resolved, flat, after_cpu
    )
    after = after.reshape(batch, count) + scorer.option_cost(
        request, resolved, (free, cpu, model), (flat, after_cpu, after_model)
    )
    return np.where(valid, points(before[:, None], after, scorer.resolution), -np.inf)


@pytest.mark.parametrize("seed", [4, 5])
def test_option_points_match_every_option_measured_in_full(seed: int) -> None:
    rng = np.random.default_rng(seed)
    builder = ClusterBuilder()
    for index in range(24):
        used = tuple(int(v) for v in rng.choice([0, 0, 190, 500, 810, 840, 1000], size=8))
        builder.node(f"n{index:02d}", model=("G2", "T4", "V100")[index % 3], used=used)
    cluster = builder.build()
    scorer = OursScore(
        FragModel(fixed=WORKLOAD), leftover=1.0, crowding=1000, reserve=1.0, foreign_idle=False
    )
    nodes = np.arange(cluster.size)
    for request in (share(160), share(500, models=("G2",)), share(810), Request(gpus=2, gpu_milli=1000)):
        scorer._points(request, cluster, nodes)  # sets the reserve floor of this decision
        resolved = scorer.model.resolved(cluster)
        assert resolved is not None
        expected = every_option_reference(scorer, request, resolved, cluster, nodes)
        assert np.array_equal(scorer.option_points(request, resolved, *_rows(cluster, nodes)), expected)


def _rows(cluster: Cluster, nodes: NDArray[np.intp]) -> tuple[NDArray[np.int64], ...]:
    return cluster.gpu_free_milli[nodes], cluster.cpu_free_milli[nodes], cluster.model_id[nodes]


def test_a_node_with_its_gpus_in_another_order_gets_the_options_of_its_own_gpus() -> None:
    # same state (multiset of free milli), GPUs in another order: the stored options are permuted
    cluster = (
        ClusterBuilder().node("a", gpus=4, used=(810, 0, 500, 840)).node("b", gpus=4, used=(840, 500, 0, 810))
    ).build()
    cached = FgdScore(FragModel(fixed=WORKLOAD))
    fresh = FgdScore(FragModel(fixed=WORKLOAD))
    fresh.caching = False
    cached.tight_gpu = fresh.tight_gpu = True  # ties by free milli, not by slot index
    moved = 0
    for request in (share(160), share(190), share(500)):
        cached._points(request, cluster, np.asarray([0]))  # stores node a's options
        assert cached.parts.keys, "the parts of node a were stored"
        picks = [cached.pick(request, cluster, node, {}) for node in (0, 1)]
        assert picks == [fresh.pick(request, cluster, node, {}) for node in (0, 1)]
        # the same GPU by free milli, in each node's own slot order
        assert cluster.gpu_free_milli[0, picks[0][0]] == cluster.gpu_free_milli[1, picks[1][0]]
        moved += picks[0] != picks[1]
    assert moved, "a pick on b differs in slot from the same pick on a"


def trace_slice(every: int, pods: int, seed: int) -> tuple[NodeTable, PodTable, list[int]]:
    """Every `every`-th openb node, and `pods` random pods of the default trace with a GPU-type
    constraint on a quarter of the GPU pods (models of the slice), so the reserve term works."""
    nodes = read_nodes(CSV / "openb_node_list_gpu_node.csv")
    nodes = NodeTable(
        *(getattr(nodes, name)[::every] for name in ("names", "cpu_milli", "memory_mib", "gpus", "models"))
    )
    table = read_pods(CSV / "openb_pod_list_default.csv")
    models = sorted(set(nodes.models))
    specs = [
        (models[index % len(models)],) if table.gpus[index] and index % 4 == 0 else spec
        for index, spec in enumerate(table.specs)
    ]
    table = replace(table, specs=specs)
    order = np.random.default_rng(seed).permutation(len(table))[:pods]
    return nodes, table, [int(index) for index in order]


def frequent_refreshes() -> Profile:
    """`ours` with the crowding re-read every 32 arrivals, so the slice sees many refreshes."""
    profile = resolve("ours")
    score = replace(profile.scores[0], args={**profile.scores[0].args, "crowd_every": 32})
    return replace(profile, scores=(score,))


@needs_data
@pytest.mark.parametrize("policy", ["ours", "fgd", "frequent"])
def test_cached_scoring_places_every_pod_of_a_real_trace_slice_like_fresh_scoring(policy: str) -> None:
    nodes, pods, order = trace_slice(every=9, pods=1_100, seed=7)
    context = PluginContext(workload=typical_workload(pods), seed=7)
    profile = frequent_refreshes() if policy == "frequent" else resolve(policy)
    cached, fresh = build_scheduler(profile, context), build_scheduler(profile, context)
    scorer = fresh.scores[0][0]
    assert isinstance(scorer, FgdScore) and scorer is fresh.picker
    scorer.caching = False
    clusters = nodes.cluster(), nodes.cluster()
    placed = 0
    refreshes = 0  # cache stamp changes while the target workload stayed: crowding refreshes
    last = None
    for step, index in enumerate(order):
        request = pods.request(index)
        decisions = [
            scheduler.schedule(request, cluster)[0]
            for scheduler, cluster in zip((cached, fresh), clusters, strict=True)
        ]
        assert (decisions[0].node, decisions[0].gpus) == (decisions[1].node, decisions[1].gpus), f"pod {step}"
        placed += decisions[0].status.ok
        table = _score(cached).table
        stamp = (_score(cached).model.version, table.stamp)
        if last is not None and stamp[0] == last[0] and stamp[1] != last[1]:
            refreshes += 1
        last = stamp
    assert np.array_equal(clusters[0].gpu_free_milli, clusters[1].gpu_free_milli)
    assert placed > 0.8 * len(order)
    if policy != "fgd":
        assert refreshes >= 1, "the slice exercises a crowding refresh that keeps the stable parts"


def _score(scheduler: Scheduler) -> FgdScore:
    scorer = scheduler.scores[0][0]
    assert isinstance(scorer, FgdScore)
    return scorer


def test_a_full_option_table_starts_over_and_still_scores_like_fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fragmodel, "MAX_ROWS", 3)
    rng = np.random.default_rng(9)
    builder = ClusterBuilder()
    for index in range(10):
        builder.node(f"n{index}", gpus=4, used=tuple(int(v) for v in rng.choice([0, 190, 500, 840], size=4)))
    cluster = builder.build()
    cached, fresh = FgdScore(FragModel(fixed=WORKLOAD)), FgdScore(FragModel(fixed=WORKLOAD))
    fresh.caching = False
    nodes = np.arange(cluster.size)
    for request in (share(160), share(500), share(160), share(810)):
        for subset in (nodes[:2], nodes, nodes[5:]):
            assert np.array_equal(
                cached._points(request, cluster, subset), fresh._points(request, cluster, subset)
            )
        best = int(np.argmax(fresh._points(request, cluster, nodes)))
        assert cached.pick(request, cluster, best, {}) == fresh.pick(request, cluster, best, {})
    assert all(rows.used <= 10 for rows in cached.parts.keys.values()), "keys started over"
