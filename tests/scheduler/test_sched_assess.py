"""`Placer.assess`: per-node verdicts agree with `place` (same code path) for every policy."""

from __future__ import annotations

import pytest

from gpupool.model import ClaimSpec, Device, GiB
from gpupool.scheduler import DeviceLoad, loads_on, make_placer, policy_names


def _mixed_pool() -> list[DeviceLoad]:
    """node-a: 2 x H100 (one half used), node-b: 2 x A100-40GB, node-c: 1 x H100 fully used."""
    devices = [
        Device("a0", "node-a", 0, "H100-80GB", 80 * GiB),
        Device("a1", "node-a", 1, "H100-80GB", 80 * GiB),
        Device("b0", "node-b", 0, "A100-40GB", 40 * GiB),
        Device("b1", "node-b", 1, "A100-40GB", 40 * GiB),
        Device("c0", "node-c", 0, "H100-80GB", 80 * GiB),
    ]
    used = {"a0": (40 * GiB, 50), "c0": (80 * GiB, 100)}
    return [DeviceLoad(d, *used.get(d.uuid, (0, 0))) for d in devices]


RANDOM = "random"  # scores are fresh draws on every call: place and assess may pick differently

SPECS = [
    ClaimSpec(memory_bytes=10 * GiB, compute_percent=25),
    ClaimSpec(gpus=2),
    ClaimSpec(memory_bytes=20 * GiB, model="A100*"),
    ClaimSpec(gpus=1, model="H100*"),
    ClaimSpec(gpus=3),
]


@pytest.mark.parametrize("policy", policy_names())
@pytest.mark.parametrize("spec", SPECS, ids=["fraction", "two-whole", "model-a100", "whole-h100", "three"])
def test_assess_agrees_with_place(policy: str, spec: ClaimSpec) -> None:
    loads = _mixed_pool()
    placer = make_placer(policy)
    verdicts = placer.assess(spec, loads)
    assert [v.node for v in verdicts] == ["node-a", "node-b", "node-c"]
    for verdict in verdicts:
        alone = placer.place(spec, loads_on(loads, {verdict.node}), learn=False)
        assert verdict.fits == alone.ok, verdict
        if not verdict.fits:
            assert verdict.reason == alone.reason and verdict.reason
            assert not verdict.best
    best = [v.node for v in verdicts if v.best]
    overall = placer.place(spec, loads, learn=False)
    if overall.ok and policy != RANDOM:
        assert best == [overall.bindings[0].node]  # the node assess marks is the node place takes
        top = max(v.score for v in verdicts if v.fits)
        assert next(v for v in verdicts if v.best).score == top
    elif not overall.ok:
        assert best == [] and not any(v.fits for v in verdicts)


def test_assess_reasons_name_what_is_missing() -> None:
    verdicts = make_placer("default").assess(ClaimSpec(memory_bytes=50 * GiB), _mixed_pool())
    by_node = {v.node: v for v in verdicts}
    assert by_node["node-a"].fits
    assert "50GiB" in by_node["node-b"].reason  # A100-40GB devices are too small
    assert "50GiB" in by_node["node-c"].reason  # its only device is full


def test_assess_learns_nothing() -> None:
    """Assessing is a what-if: the online policy's view of arrivals does not move."""
    placer = make_placer("default")
    loads = _mixed_pool()
    spec = ClaimSpec(memory_bytes=10 * GiB, compute_percent=25)
    before = placer.assess(spec, loads)
    for _ in range(20):
        placer.assess(ClaimSpec(gpus=2), loads)
    assert placer.assess(spec, loads) == before


def test_assess_empty_pool() -> None:
    assert make_placer("default").assess(ClaimSpec(), []) == []
