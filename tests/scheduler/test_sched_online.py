"""Our policy and live FGD learn the target workload online; the simulator's FGD reads the trace's."""

from __future__ import annotations

import numpy as np
import pytest

from gpupool.scheduler.frag import OnlineWorkload, TargetWorkload
from gpupool.scheduler.framework import PluginContext
from gpupool.scheduler.plugins.fgd import FgdScore
from gpupool.scheduler.plugins.fragmodel import distance
from gpupool.scheduler.profiles import build_scheduler

TRACE = TargetWorkload(((4_000, 500, 1, None, None),), np.asarray([1.0]))


@pytest.mark.parametrize(
    ("policy", "offline"),
    [("fgd", True), ("ours", False), ("default", False)],
)
def test_who_reads_the_trace(policy: str, offline: bool) -> None:
    scorer = build_scheduler(policy, PluginContext(workload=TRACE)).scores[0][0]
    assert isinstance(scorer, FgdScore)
    assert (scorer.model.fixed is TRACE) is offline
    assert (scorer.model.online is None) is offline


def test_online_histogram_decays_old_arrivals() -> None:
    online = OnlineWorkload(half_life=10, threshold=1.0)
    for _ in range(100):
        online.observe((1, 100, 1, None, None))
    for _ in range(30):
        online.observe((2, 200, 1, None, None))
    snapshot = online.snapshot()
    assert snapshot is not None and snapshot.shapes[0] == (2, 200, 1, None, None)
    assert snapshot.probs[0] > 0.85


def test_typical_shapes_cover_the_threshold() -> None:
    shapes = [(1, 0, 0, None, None)] * 50 + [(2, 500, 1, None, None)] * 45 + [(3, 1000, 1, None, None)] * 5
    workload = TargetWorkload.typical(shapes, threshold=0.95)
    assert workload.shapes == ((1, 0, 0, None, None), (2, 500, 1, None, None))
    assert workload.probs.tolist() == pytest.approx([50 / 95, 45 / 95])
    assert distance(workload, workload) == 0.0
    assert distance(workload, TargetWorkload.typical(shapes[50:95])) == pytest.approx(50 / 95)
