"""The replay with departures drives the real pool: queueing, releases and delays on a simulated clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.model import ClaimSpec, Device
from gpupool.pool.replay import ReplayClaim, replay

GIB = 1024**3


def gpus(count: int, node: str = "n1", model: str = "T4") -> list[Device]:
    return [Device(f"{node}-{i}", node, i, model, 16 * GIB) for i in range(count)]


@pytest.mark.parametrize("policy", ["ours", "fgd", "bestfit"])
def test_a_claim_waits_for_a_release_and_its_delay_is_measured(tmp_path: Path, policy: str) -> None:
    claims = [
        ReplayClaim(0.0, 100.0, ClaimSpec(gpus=2)),  # takes both GPUs until t=100
        ReplayClaim(10.0, 50.0, ClaimSpec(gpus=1)),  # waits 90 s, runs 100..150
        ReplayClaim(20.0, 5.0, ClaimSpec(gpus=1, compute_percent=50)),  # waits 80 s, runs 100..105
        ReplayClaim(200.0, 1.0, ClaimSpec(gpus=1)),  # finds the pool empty
    ]
    result = replay(claims, gpus(2), policy, tmp_path / "pool.db", samples=4)
    assert sorted(result.delays_s.tolist()) == [0.0, 0.0, 80.0, 90.0]
    assert result.never_bound == 0
    # a sample at t sees every arrival and release up to t: the gang holds both GPUs; at 100 it
    # left and the two waiting claims took 1.5 GPUs; at 150 both ended; the last arrived at 200
    assert result.times_s.tolist() == [50.0, 100.0, 150.0, 200.0]
    assert result.allocation_pct.tolist() == [100.0, 75.0, 0.0, 50.0]
    assert result.waiting.tolist() == [2, 0, 0, 0]
    assert result.delay_p50_s.tolist()[:2] == [0.0, 85.0]  # delays of the claims bound in each window
    assert result.placements >= 4


def test_claims_that_never_fit_are_counted_as_waiting(tmp_path: Path) -> None:
    claims = [ReplayClaim(0.0, 10.0, ClaimSpec(gpus=1)), ReplayClaim(1.0, 10.0, ClaimSpec(gpus=4))]
    result = replay(claims, gpus(2), "ours", tmp_path / "pool.db", samples=2)
    assert result.never_bound == 1
    assert result.delays_s.tolist() == [0.0]
    assert result.waiting.tolist() == [0, 1]  # samples at 0.5 s and 1 s
