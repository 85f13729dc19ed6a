"""`ours`: the leftover term (milli no arrived size can fill) on top of the blended measure."""

from __future__ import annotations

import numpy as np
import pytest
from sched_builders import ClusterBuilder, share, whole

from gpupool.scheduler.frag import ResolvedWorkload, TargetWorkload
from gpupool.scheduler.plugins.fragmodel import FragModel
from gpupool.scheduler.plugins.ours import LeftoverTables, OursScore, fill_chances, leftover_waste

WORKLOAD = TargetWorkload(
    (
        (8_000, 1000, 1, None, None),
        (4_000, 810, 1, None, None),
        (4_000, 160, 1, None, None),
        (2_000, 0, 0, None, None),
    ),
    np.asarray([0.5, 0.3, 0.1, 0.1]),
)


def resolved_for(builder: ClusterBuilder) -> tuple[ResolvedWorkload, ClusterBuilder]:
    return ResolvedWorkload.of(WORKLOAD, builder.build()), builder


@pytest.mark.parametrize(
    ("free", "waste"),
    [(0, 0), (1000, 0), (190, 30), (130, 130), (320, 0), (350, 30), (840, 30), (970, 0), (975, 5)],
)
def test_leftover_waste_is_what_no_sum_of_arrived_sizes_fills(free: int, waste: int) -> None:
    resolved, _ = resolved_for(ClusterBuilder().node("a", gpus=1))
    assert leftover_waste(resolved)[free] == waste


def test_leftover_adds_the_weighted_waste_of_every_gpu() -> None:
    cluster = ClusterBuilder().node("a", gpus=2, used=(810, 870)).build()
    resolved = ResolvedWorkload.of(WORKLOAD, cluster)
    free, cpu, model = cluster.gpu_free_milli, cluster.cpu_free_milli, cluster.model_id
    plain = OursScore(FragModel(fixed=WORKLOAD))
    weighted = OursScore(FragModel(fixed=WORKLOAD), leftover=0.5)
    assert plain.volatile_measure(resolved, free, cpu) == 0.0
    assert weighted.node_measure(resolved, free, cpu, model) == plain.node_measure(resolved, free, cpu, model)
    # 190 free wastes 30 (one 160 fits), 130 free wastes all 130
    assert weighted.volatile_measure(resolved, free, cpu) == pytest.approx([0.5 * (30 + 130)])


def test_a_small_share_goes_to_the_sliver_it_completes() -> None:
    cluster = ClusterBuilder().node("a", gpus=3, used=(0, 810, 500)).build()
    scorer = OursScore(FragModel(fixed=WORKLOAD), leftover=0.5)
    assert scorer.pick(share(160), cluster, 0, {}) == (1,)


def test_a_size_unlikely_to_come_fills_only_its_chance() -> None:
    resolved, _ = resolved_for(ClusterBuilder().node("a", gpus=1))
    assert leftover_waste(resolved, fill={160: 0.0})[190] == 190  # only a 160 could fill it
    assert leftover_waste(resolved, fill={160: 0.5})[190] == 110  # 30 left + half of 160
    assert leftover_waste(resolved, fill={160: 0.0})[840] == 30  # an 810 (sure to come) still fits
    assert leftover_waste(resolved, fill={160: 1.0}).tolist() == leftover_waste(resolved).tolist()


def test_fill_chances_are_expected_tasks_over_the_slivers_waiting_for_them() -> None:
    # ten 190-milli slivers wait for 160-milli tasks (p = 0.1); one 840 for an 810 (p = 0.3)
    cluster = (
        ClusterBuilder().node("a", gpus=8, used=(810,) * 8).node("b", gpus=4, used=(810, 810, 160, 0)).build()
    )
    resolved = ResolvedWorkload.of(WORKLOAD, cluster)
    chances = fill_chances(resolved, cluster.gpu_free_milli, horizon=20)
    assert chances == {160: pytest.approx(2 / 10), 810: 1.0}
    assert fill_chances(resolved, cluster.gpu_free_milli, horizon=1000)[160] == 1.0


GLUT_WORKLOAD = TargetWorkload(
    (
        (8_000, 1000, 1, None, None),
        (4_000, 810, 1, None, None),
        (4_000, 470, 1, None, None),
        (4_000, 320, 1, None, None),
        (4_000, 160, 1, None, None),
        (2_000, 0, 0, None, None),
    ),
    np.asarray([0.45, 0.25, 0.12, 0.06, 0.02, 0.1]),
)


@pytest.mark.parametrize(("crowding", "slot"), [(0.0, 6), (5.0, 7)])
def test_with_a_glut_of_small_slivers_a_share_stops_leaving_one_more(crowding: float, slot: int) -> None:
    # Five 190-milli slivers already wait for the rare 160-milli tasks. A 320 on slot 6 (530 free)
    # leaves 210, which only a 160 completes: fine when 160s are expected to come (no crowding),
    # near dead when five slivers already wait for them, so slot 7 (470 free) is taken instead.
    cluster = ClusterBuilder().node("a", gpus=8, used=(810,) * 5 + (0, 470, 530)).build()
    scorer = OursScore(FragModel(fixed=GLUT_WORKLOAD), leftover=1.0, crowding=crowding)
    scorer.score(share(320), cluster, np.asarray([0]), {})
    assert scorer.pick(share(320), cluster, 0, {}) == (slot,)


def test_fill_chances_are_re_read_every_crowd_every_arrivals() -> None:
    cluster = ClusterBuilder().node("a", gpus=8, used=(810,) * 8).build()
    scorer = OursScore(FragModel(fixed=WORKLOAD), leftover=1.0, crowding=20, crowd_every=4)
    first = scorer.cache_version(cluster)
    assert scorer.cache_version(cluster) == first, "no arrival: cached points stay valid"
    for _ in range(4):
        scorer.observe(share(160))
    assert scorer.cache_version(cluster) != first


def test_cached_points_survive_a_re_read_that_moves_no_leftover_by_the_tolerance() -> None:
    cluster = ClusterBuilder().node("a", gpus=8, used=(810,) * 8).build()
    scorer = OursScore(
        FragModel(fixed=WORKLOAD), leftover=1.0, crowding=20, crowd_every=1, crowd_tolerance=10
    )
    first = scorer.cache_version(cluster)
    scorer.observe(share(160))
    assert scorer.cache_version(cluster) == first, "same slivers, same chances: nothing to drop"
    cluster.gpu_free_milli[0, :] = 1000  # the slivers are gone: a 160 is sure to find one again
    scorer.observe(share(160))
    assert scorer.cache_version(cluster) != first


# ----------------------------------------------------------------- model constraints (issue 13)
T4_ONLY = TargetWorkload(((8_000, 1000, 1, ("T4",), None),), np.asarray([1.0]))


def test_foreign_idle_off_a_shape_counts_nothing_on_a_model_it_may_not_use() -> None:
    cluster = ClusterBuilder().node("g2", gpus=8).build()
    resolved = ResolvedWorkload.of(T4_ONLY, cluster)
    free, cpu, model = cluster.gpu_free_milli, cluster.cpu_free_milli, cluster.model_id
    assert resolved.frag(free, cpu, model).tolist() == [8000.0]  # FGD: all idle is its fragment
    assert resolved.frag(free, cpu, model, no_access=False).tolist() == [0.0]
    assert resolved.capacity_frag(free, cpu, model).tolist() == [8000.0]
    assert resolved.capacity_frag(free, cpu, model, no_access=False).tolist() == [0.0]


def two_models() -> ClusterBuilder:
    """A scarce T4 node (2 GPUs, first by name: it wins ties) beside four G2 nodes (32 GPUs)."""
    builder = ClusterBuilder().node("a-t4", gpus=2, model="T4", cpu=104_000)
    for index in range(4):
        builder.node(f"g2-{index}", gpus=8)
    return builder


def test_pressure_is_the_share_of_a_model_constrained_demand_will_want() -> None:
    from gpupool.scheduler.plugins.ours import ReserveState

    cluster = two_models().build()
    counts = {(8_000, 1000, 1, None, None): 100.0, (8_000, 1000, 1, ("T4",), None): 1.0}
    state = ReserveState.of(ResolvedWorkload.of(WORKLOAD, cluster), cluster, counts)
    assert state is not None
    t4, g2 = cluster.models.index("T4"), cluster.models.index("G2")
    # T4 gets 1/101 of the demand and holds 2/34 of the GPUs
    assert state.pressure[t4] == pytest.approx((1 / 101) / (2 / 34))
    assert state.pressure[g2] == 0.0
    counts[(8_000, 1000, 1, ("T4",), None)] = 10.0  # now more than T4 can hold: capped
    state = ReserveState.of(ResolvedWorkload.of(WORKLOAD, cluster), cluster, counts)
    assert state is not None and state.pressure[t4] == 1.0
    unconstrained = {(8_000, 1000, 1, None, None): 1.0}
    assert ReserveState.of(ResolvedWorkload.of(WORKLOAD, cluster), cluster, unconstrained) is None


@pytest.mark.parametrize(("reserve", "expected"), [(1.0, "g2-0"), (0.0, "a-t4")])
def test_an_unconstrained_claim_leaves_a_pressed_model_to_its_constrained_claims(
    reserve: float, expected: str
) -> None:
    from dataclasses import replace

    from sched_builders import whole

    from gpupool.scheduler.profiles import OURS_PROFILE, build_scheduler

    ref = OURS_PROFILE.scores[0]
    profile = replace(OURS_PROFILE, scores=(replace(ref, args={**ref.args, "reserve": reserve}),))
    scheduler = build_scheduler(profile)
    cluster = two_models().build()
    for _ in range(10):  # as many T4-only claims arrive as unconstrained ones: T4 is pressed
        for observer in scheduler.observers:
            observer.observe(whole(models=("T4",)))
            observer.observe(whole())
    decision = scheduler.decide(whole(), cluster)
    assert cluster.node_names[decision.node] == expected


def test_leftover_tables_drop_the_sizes_whose_cpu_no_longer_fits() -> None:
    # WORKLOAD: whole GPUs need 8 vCPU, 810 and 160 shares 4 vCPU
    resolved, _ = resolved_for(ClusterBuilder().node("a", gpus=2))
    tables = LeftoverTables.of(resolved)
    free = np.asarray([[190, 1000]] * 3)
    cpu = np.asarray([9_000, 5_000, 3_000])
    # 9 vCPU: all sizes (190 wastes 30, a whole GPU nothing); 5: no whole task (1000 = 810 + 160
    # wastes 30); 3: nothing fits, every free milli is waste
    assert tables.waste(free, cpu).tolist() == [30.0, 60.0, 1190.0]
    assert tables.tables[-1].tolist() == leftover_waste(resolved).tolist()


def test_cpu_aware_leftover_counts_a_sliver_behind_exhausted_cpu_as_waste() -> None:
    builder = ClusterBuilder().node("a", gpus=2, used=(810, 810), cpu=2_000)
    cluster = builder.node("b", gpus=2, used=(810, 810)).build()
    resolved = ResolvedWorkload.of(WORKLOAD, cluster)
    free, cpu, model = cluster.gpu_free_milli, cluster.cpu_free_milli, cluster.model_id
    blind_scorer = OursScore(FragModel(fixed=WORKLOAD), leftover=1.0)
    aware_scorer = OursScore(FragModel(fixed=WORKLOAD), leftover=1.0, leftover_cpu=True)
    blind = blind_scorer.node_measure(resolved, free, cpu, model) + blind_scorer.volatile_measure(
        resolved, free, cpu
    )
    aware = aware_scorer.node_measure(resolved, free, cpu, model) + aware_scorer.volatile_measure(
        resolved, free, cpu
    )
    # a: two 190 slivers no 160 task can reach (2 vCPU left): 380 instead of 2 x 30; b: unchanged
    assert (aware - blind).tolist() == pytest.approx([380 - 60, 0])


def test_a_whole_gpu_keeps_the_cpu_a_sliver_beside_it_needs() -> None:
    # both nodes hold an 810 and a free GPU; taking the free GPU of `b` leaves 1 vCPU, so b's 190
    # sliver can never get its 160 task; on `a` 4 vCPU stay for it
    builder = ClusterBuilder().node("a", gpus=2, used=(810, 0), cpu=12_000)
    cluster = builder.node("b", gpus=2, used=(810, 0), cpu=9_000).build()
    nodes = np.arange(cluster.size)
    scorer = OursScore(FragModel(fixed=WORKLOAD), measure="fgd", leftover=1.0, leftover_cpu=True)
    points = scorer.score(whole(), cluster, nodes, {})
    assert points[0] > points[1]
