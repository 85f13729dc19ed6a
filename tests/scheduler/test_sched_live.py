"""Declarative scenarios through the live `Placer`: topology + claims -> expected placement or reason."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from gpupool.errors import InvalidRequest
from gpupool.model import ClaimSpec, Device, GiB
from gpupool.scheduler import DEFAULT_POLICY, DeviceLoad, make_placer, policy_names
from gpupool.scheduler.live import FrameworkPlacer
from gpupool.scheduler.plugins.fgd import FgdScore


def devices(
    nodes: int, gpus: int, model: str = "H100-80GB", memory_gib: int = 80, nvlink_pairs: bool = False
) -> list[Device]:
    """`nodes` x `gpus` devices; with `nvlink_pairs`, slots (0,1), (2,3)... are NVLink peers."""
    result = []
    for n in range(nodes):
        for i in range(gpus):
            peers = (f"{model}-{n}-{i ^ 1}",) if nvlink_pairs else ()
            result.append(
                Device(f"{model}-{n}-{i}", f"node-{n}", i, model, memory_gib * GiB, nvlink_peers=peers)
            )
    return result


@dataclass
class Scenario:
    id: str
    devices: list[Device]
    claims: list[ClaimSpec]
    expect: list[tuple[str, ...] | str]  # device UUIDs per claim, or the reason it waits
    policy: str = "default"
    used: dict[str, tuple[int, int]] = field(default_factory=dict)  # uuid -> (memory GiB, compute %)


SCENARIOS = [
    Scenario(
        "fills-first-node",
        devices(2, 2),
        [ClaimSpec(gpus=2), ClaimSpec(gpus=2)],
        [("H100-80GB-0-0", "H100-80GB-0-1"), ("H100-80GB-1-0", "H100-80GB-1-1")],
    ),
    Scenario("gang-or-nothing", devices(2, 2), [ClaimSpec(gpus=3)], ["no node has 3 GPUs"]),
    Scenario(
        "nvlink-pair",
        devices(1, 4, nvlink_pairs=True),
        [ClaimSpec(gpus=1), ClaimSpec(gpus=2)],
        [("H100-80GB-0-0",), ("H100-80GB-0-2", "H100-80GB-0-3")],
        policy="bestfit",
    ),
    Scenario(
        "memory-reason",
        devices(1, 2),
        [ClaimSpec(memory_bytes=40 * GiB, model="H100*")] * 5,
        [
            ("H100-80GB-0-0",),
            ("H100-80GB-0-0",),
            ("H100-80GB-0-1",),
            ("H100-80GB-0-1",),
            "no device with 40GiB free on model H100*",
        ],
        policy="bestfit",
    ),
    Scenario(
        "unknown-model", devices(1, 2), [ClaimSpec(model="A100*")], ["no device on model A100* in the pool"]
    ),
    Scenario(
        "model-choice",
        devices(1, 2) + devices(1, 2, model="L4", memory_gib=24),
        [ClaimSpec(memory_bytes=10 * GiB, model="L4")],
        [("L4-0-0",)],
    ),
    Scenario(
        "busy-avoided",
        devices(2, 1),
        [ClaimSpec(compute_percent=50)],
        [("H100-80GB-1-0",)],
        policy="spread",
        used={"H100-80GB-0-0": (10, 20)},
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(scenario: Scenario) -> None:
    placer = make_placer(scenario.policy)
    held: dict[str, tuple[int, int]] = {uuid: (gib * GiB, pct) for uuid, (gib, pct) in scenario.used.items()}
    for claim, expected in zip(scenario.claims, scenario.expect, strict=True):
        loads = [DeviceLoad(d, *held.get(d.uuid, (0, 0))) for d in scenario.devices]
        result = placer.place(claim, loads)
        if isinstance(expected, str):
            assert not result.ok and result.reason == expected
            continue
        assert tuple(b.device_uuid for b in result.bindings) == expected, result.reason
        for binding in result.bindings:
            memory, compute = held.get(binding.device_uuid, (0, 0))
            held[binding.device_uuid] = (memory + binding.memory_bytes, compute + binding.compute_percent)


@pytest.mark.parametrize("policy", policy_names())
def test_every_policy_places_a_claim(policy: str) -> None:
    loads = [DeviceLoad(d) for d in devices(3, 4)]
    result = make_placer(policy).place(ClaimSpec(memory_bytes=10 * GiB, compute_percent=25), loads)
    assert result.ok and result.bindings[0].memory_bytes == 10 * GiB
    assert result.bindings[0].compute_percent == 25


def test_default_is_ours_and_unknown_is_refused() -> None:
    assert DEFAULT_POLICY == "ours"
    placer = make_placer("default")
    assert isinstance(placer, FrameworkPlacer) and placer.name == "ours"
    with pytest.raises(InvalidRequest, match="unknown policy 'nope'"):
        make_placer("nope")


def test_live_fgd_learns_its_workload_online() -> None:
    placer = make_placer("fgd")
    assert isinstance(placer, FrameworkPlacer)
    fgd = placer.scheduler.scores[0][0]
    assert isinstance(fgd, FgdScore) and fgd.model.online is not None
    loads = [DeviceLoad(d) for d in devices(2, 2)]
    for _ in range(3):
        placer.place(ClaimSpec(compute_percent=30), loads)
    placer.place(ClaimSpec(gpus=2), loads)
    assert fgd.model.online.arrivals == 4
    workload = fgd.model.online.snapshot()
    assert workload is not None and (0, 300, 1, None, None) in workload.shapes


def test_snapshot_cache_matches_a_fresh_snapshot_after_changes() -> None:
    """The placer's reused cluster equals a freshly built one, row for row and state id for state id."""
    from gpupool.model import Binding
    from gpupool.scheduler.cluster import StateInterner
    from gpupool.scheduler.contract import with_bindings
    from gpupool.scheduler.live import SnapshotCache, snapshot

    pool = devices(3, 4) + devices(2, 2, model="T4", memory_gib=16)
    loads = [DeviceLoad(device) for device in pool]
    interner = StateInterner()
    cache = SnapshotCache(interner)
    first, _ = cache.get(loads)
    first.state_ids()
    changes = [
        [Binding("H100-80GB-1-2", "node-1", 40 * GiB, 50)],
        [Binding("T4-0-1", "node-0", 16 * GiB, 100), Binding("H100-80GB-0-0", "node-0", 8 * GiB, 10)],
    ]
    for bindings in changes:
        loads = with_bindings(loads, bindings)
        reused, grid = cache.get(loads)
        assert reused is first  # the same arrays, edited in place
        fresh, fresh_grid = snapshot(loads, interner)
        assert grid == fresh_grid
        for name in ("gpu_free_milli", "gpu_mem_free_bytes", "gpu_total_milli", "model_id"):
            assert (getattr(reused, name) == getattr(fresh, name)).all(), name
        assert (reused.state_ids() == fresh.state_ids()).all()
    cache.get([DeviceLoad(device) for device in pool[:-1]])  # a device left: rebuilt
    assert cache.get([DeviceLoad(device) for device in pool[:-1]])[0] is not first


def test_placer_with_reused_snapshots_places_like_fresh_ones() -> None:
    from gpupool.scheduler.contract import with_bindings

    pool = devices(4, 4) + devices(3, 2, model="T4", memory_gib=16)
    specs = [ClaimSpec(compute_percent=c) for c in (30, 60, 25, 80, 45)] + [
        ClaimSpec(gpus=2),
        ClaimSpec(gpus=1),
    ]
    cached, fresh = make_placer("ours"), make_placer("ours")
    loads_a = [DeviceLoad(device) for device in pool]
    for spec in specs * 3:
        placed = cached.place(spec, loads_a)
        assert isinstance(fresh, FrameworkPlacer)
        fresh.snapshots = type(fresh.snapshots)(fresh.interner)  # forget: build from scratch each time
        assert fresh.place(spec, loads_a) == placed
        loads_a = with_bindings(loads_a, placed.bindings)
