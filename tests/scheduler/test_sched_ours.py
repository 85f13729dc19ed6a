"""`ours`: the leftover term (milli no arrived size can fill) on top of the blended measure."""

from __future__ import annotations

import numpy as np
import pytest
from sched_builders import ClusterBuilder, share

from gpupool.scheduler.frag import ResolvedWorkload, TargetWorkload
from gpupool.scheduler.plugins.fragmodel import FragModel
from gpupool.scheduler.plugins.ours import OursScore, leftover_waste

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
    plain = OursScore(FragModel(fixed=WORKLOAD)).node_measure(resolved, free, cpu, model)
    weighted = OursScore(FragModel(fixed=WORKLOAD), leftover=0.5).node_measure(resolved, free, cpu, model)
    # 190 free wastes 30 (one 160 fits), 130 free wastes all 130
    assert weighted - plain == pytest.approx([0.5 * (30 + 130)])


def test_a_small_share_goes_to_the_sliver_it_completes() -> None:
    cluster = ClusterBuilder().node("a", gpus=3, used=(0, 810, 500)).build()
    scorer = OursScore(FragModel(fixed=WORKLOAD), leftover=0.5)
    assert scorer.pick(share(160), cluster, 0, {}) == (1,)
