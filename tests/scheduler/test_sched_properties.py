"""Property: no sequence of binds and releases, under any policy, ever over-commits a device."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st
from sched_builders import ClusterBuilder

from gpupool.errors import CapacityError
from gpupool.model import Binding, ClaimSpec, Device, GiB
from gpupool.scheduler import DeviceLoad, make_placer
from gpupool.scheduler.cluster import Allocation, Cluster
from gpupool.scheduler.profiles import build_scheduler
from gpupool.scheduler.request import Request

POLICIES = [
    "random",
    "dotprod",
    "gpu-clustering",
    "gpu-packing",
    "bestfit",
    "fgd",
    "binpack",
    "spread",
    "ours",
]

requests = st.builds(
    lambda gpus, milli, cpu, memory: Request(
        gpus=gpus, gpu_milli=milli if gpus == 1 else (1000 if gpus else 0), cpu_milli=cpu, memory=memory
    ),
    st.sampled_from([0, 1, 1, 1, 2, 4]),
    st.integers(1, 1000),
    st.integers(0, 40_000),
    st.integers(0, 100_000),
)
steps = st.lists(st.one_of(requests, st.integers(0, 30)), min_size=5, max_size=60)


def small_cluster() -> Cluster:
    return (
        ClusterBuilder()
        .node("a", gpus=4, cpu=32_000, memory=131_072)
        .node("b", gpus=2, cpu=16_000, memory=65_536, model="T4")
        .node("c", gpus=8, cpu=96_000, memory=393_216)
        .build()
    )


def assert_sound(cluster: Cluster) -> None:
    assert (cluster.gpu_free_milli >= 0).all()
    assert (cluster.gpu_free_milli <= cluster.gpu_total_milli).all()
    assert (cluster.cpu_free_milli >= 0).all() and (cluster.cpu_free_milli <= cluster.cpu_total_milli).all()
    assert (cluster.mem_free >= 0).all() and (cluster.mem_free <= cluster.mem_total).all()
    assert (cluster.kind_counts >= 0).all()


@settings(max_examples=150, deadline=None)
@given(policy=st.sampled_from(POLICIES), actions=steps)
def test_binds_and_releases_never_overcommit(policy: str, actions: list[Request | int]) -> None:
    cluster = small_cluster()
    scheduler = build_scheduler(policy)
    held: list[Allocation] = []
    for action in actions:
        if isinstance(action, int):
            if held:
                cluster.release(held.pop(action % len(held)))
        else:
            _, allocation = scheduler.schedule(action, cluster)
            if allocation is not None:
                held.append(allocation)
        assert_sound(cluster)
    for allocation in held:
        cluster.release(allocation)
    assert (cluster.gpu_free_milli == cluster.gpu_total_milli).all()
    assert (cluster.cpu_free_milli == cluster.cpu_total_milli).all()


@settings(max_examples=40, deadline=None)
@given(
    node=st.integers(0, 2),
    slots=st.lists(st.integers(-1, 9), min_size=1, max_size=3),
    milli=st.integers(1, 1000),
)
def test_direct_allocations_are_checked(node: int, slots: list[int], milli: int) -> None:
    """Hand-picked slots either fit or raise CapacityError; the cluster never goes negative."""
    cluster = small_cluster()
    request = Request(gpus=len(slots), gpu_milli=milli if len(slots) == 1 else 1000, cpu_milli=1000)
    for _ in range(3):
        with contextlib.suppress(CapacityError):
            cluster.allocate(request, node, tuple(slots))
        assert_sound(cluster)


claims = st.builds(
    ClaimSpec,
    gpus=st.sampled_from([1, 1, 1, 2, 4]),
    memory_bytes=st.one_of(st.none(), st.integers(1, 80).map(lambda gib: gib * GiB)),
    compute_percent=st.one_of(st.none(), st.integers(1, 100)),
    model=st.sampled_from([None, "H100*", "L4"]),
)


@settings(max_examples=60, deadline=None)
@given(
    policy=st.sampled_from(["default", "fgd", "bestfit", "binpack", "spread", "random"]),
    actions=st.lists(st.one_of(claims, st.integers(0, 30)), min_size=5, max_size=40),
)
def test_live_placements_never_overcommit(policy: str, actions: list[ClaimSpec | int]) -> None:
    """Through the live Placer: applying every returned binding keeps each device within its capacity."""
    devices = [
        Device(f"{model}-{n}-{i}", f"node-{n}", i, model, size * GiB)
        for n, (model, size, count) in enumerate([("H100-80GB", 80, 4), ("L4", 24, 2), ("H100-80GB", 80, 2)])
        for i in range(count)
    ]
    placer = make_placer(policy)
    used: dict[str, tuple[int, int]] = {}
    bound: list[tuple[Binding, ...]] = []
    for action in actions:
        if isinstance(action, int):
            if bound:
                for binding in bound.pop(action % len(bound)):
                    memory, compute = used[binding.device_uuid]
                    used[binding.device_uuid] = (
                        memory - binding.memory_bytes,
                        compute - binding.compute_percent,
                    )
            continue
        loads = [DeviceLoad(d, *used.get(d.uuid, (0, 0))) for d in devices]
        result = placer.place(action, loads)
        if not result.ok:
            assert result.reason
            continue
        assert len(result.bindings) == action.gpus
        assert len({b.node for b in result.bindings}) == 1  # gang on one node
        for binding in result.bindings:
            memory, compute = used.get(binding.device_uuid, (0, 0))
            used[binding.device_uuid] = (memory + binding.memory_bytes, compute + binding.compute_percent)
        bound.append(result.bindings)
        for device in devices:
            memory, compute = used.get(device.uuid, (0, 0))
            assert 0 <= memory <= device.memory_total_bytes and 0 <= compute <= 100
