"""The simulated backend: stable devices, NVLink peers, telemetry that follows allocations."""

from __future__ import annotations

import re
import threading

import pytest
from devices_helpers import FakeClock

from gpupool.devices import DeviceBackend, SimulatedBackend, lookup_model
from gpupool.errors import InvalidRequest, NotFound

GiB = 1024**3
NVML_UUID = re.compile(r"^GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def uuids(spec: str) -> list[str]:
    return [device.uuid for device in SimulatedBackend(spec).devices()]


def test_speaks_the_device_backend_protocol() -> None:
    backend: DeviceBackend = SimulatedBackend("1x1xT4")
    assert backend.name == "simulated"


def test_devices_follow_the_spec() -> None:
    backend = SimulatedBackend(" 2x8xH100-80GB,1x4xA100-40GB ")
    devices = backend.devices()
    assert backend.spec == "2x8xH100-80GB,1x4xA100-40GB"
    assert len(devices) == 20
    assert [(d.node, d.index) for d in devices[7:10]] == [
        ("sim-node-0", 7),
        ("sim-node-1", 0),
        ("sim-node-1", 1),
    ]
    a100 = devices[-1]
    assert (a100.node, a100.index, a100.model) == ("sim-node-2", 3, "A100-40GB")
    assert a100.memory_total_bytes == lookup_model("A100-40GB").memory_total_bytes
    assert (a100.sm_count, a100.mig_capable, a100.mig_mode, a100.parent_uuid) == (108, True, False, None)


def test_uuids_look_like_nvml_and_are_unique() -> None:
    found = uuids("4x8xH100-80GB,2x4xL4")
    assert all(NVML_UUID.match(value) for value in found), found[:3]
    assert len(set(found)) == len(found) == 40


def test_same_spec_gives_same_uuids() -> None:
    assert uuids("2x8xH100-80GB,1x4xA100-40GB") == uuids("2x8xH100-80GB,1x4xA100-40GB")


@pytest.mark.parametrize(
    ("spec_a", "spec_b"),
    [("1x4xH100-80GB", "1x4xA100-80GB"), ("1x4xL4", "1x4xT4"), ("1x8xH100-80GB", "1x8xH200-141GB")],
    ids=["other-model", "other-small-model", "other-generation"],
)
def test_different_spec_gives_different_uuids(spec_a: str, spec_b: str) -> None:
    assert not set(uuids(spec_a)) & set(uuids(spec_b))


def test_a_uuid_names_one_slot_model_node_and_index() -> None:
    # sim-node-0 GPU 0 is the same T4 in both layouts; the other slot differs
    two_nodes, one_node = uuids("2x1xT4"), uuids("1x2xT4")
    assert two_nodes[0] == one_node[0]
    assert two_nodes[1] != one_node[1]


def test_appending_a_group_keeps_existing_uuids() -> None:
    before = uuids("2x8xH100-80GB")
    after = uuids("2x8xH100-80GB,1x4xL4")
    assert after[:16] == before
    assert not set(after[16:]) & set(before)


@pytest.mark.parametrize(
    ("spec", "peers_per_device"),
    [("2x8xH100-80GB", 7), ("1x4xV100-32GB", 3), ("2x4xL4", 0), ("1x2xT4", 0)],
    ids=["h100-sxm", "v100-sxm2", "l4-pcie", "t4-pcie"],
)
def test_nvlink_peers_are_the_other_gpus_of_the_node(spec: str, peers_per_device: int) -> None:
    devices = SimulatedBackend(spec).devices()
    by_uuid = {device.uuid: device for device in devices}
    for device in devices:
        assert len(device.nvlink_peers) == peers_per_device
        assert device.uuid not in device.nvlink_peers
        assert all(by_uuid[peer].node == device.node for peer in device.nvlink_peers)


def test_idle_devices_report_zero(clock: FakeClock) -> None:
    backend = SimulatedBackend("1x2xH100-80GB", clock=clock)
    samples = backend.telemetry()
    assert [(s.utilization_percent, s.memory_used_bytes, s.processes) for s in samples] == [(0.0, 0, ())] * 2
    assert [s.uuid for s in samples] == [d.uuid for d in backend.devices()]
    assert all(s.timestamp == clock.now for s in samples)


def test_utilization_and_memory_follow_allocations(clock: FakeClock) -> None:
    backend = SimulatedBackend("1x2xH100-80GB", clock=clock)
    busy, idle = (device.uuid for device in backend.devices())
    backend.note_allocations({busy: (10 * GiB, 50)})
    seen_utilization = set()
    for step in range(60):
        clock.now = 1000.0 + step * 1.7
        by_uuid = {sample.uuid: sample for sample in backend.telemetry()}
        assert 35.0 <= by_uuid[busy].utilization_percent <= 50.0
        assert 0.70 * 10 * GiB <= by_uuid[busy].memory_used_bytes <= 0.95 * 10 * GiB
        assert (by_uuid[idle].utilization_percent, by_uuid[idle].memory_used_bytes) == (0.0, 0)
        seen_utilization.add(by_uuid[busy].utilization_percent)
    assert len(seen_utilization) > 10, "utilization should wobble over time"


def test_more_compute_means_more_utilization_at_the_same_instant(clock: FakeClock) -> None:
    backend = SimulatedBackend("1x1xA100-80GB", clock=clock)
    (device,) = backend.devices()
    levels = []
    for compute in (10, 25, 50, 100):
        backend.note_allocations({device.uuid: (GiB, compute)})
        levels.append(backend.telemetry()[0].utilization_percent)
    assert levels == sorted(levels) and levels[0] < levels[-1]


def test_note_allocations_replaces_and_clamps(clock: FakeClock) -> None:
    backend = SimulatedBackend("1x1xT4", clock=clock)
    (device,) = backend.devices()
    backend.note_allocations({device.uuid: (10**15, 400), "GPU-not-ours": (GiB, 50)})
    sample = backend.telemetry()[0]
    assert sample.utilization_percent <= 100.0
    assert sample.memory_used_bytes <= device.memory_total_bytes
    backend.note_allocations({})
    assert backend.telemetry()[0].utilization_percent == 0.0


def test_same_spec_and_time_give_same_telemetry(clock: FakeClock) -> None:
    first, second = SimulatedBackend("1x4xL40S", clock=clock), SimulatedBackend("1x4xL40S", clock=clock)
    for backend in (first, second):
        backend.note_allocations({device.uuid: (8 * GiB, 30) for device in backend.devices()})
    assert first.telemetry() == second.telemetry()
    # devices do not wobble in lock-step: each has its own phase
    assert len({sample.utilization_percent for sample in first.telemetry()}) > 1


def test_processes_show_in_telemetry(clock: FakeClock) -> None:
    backend = SimulatedBackend("1x2xL4", clock=clock)
    target, other = (device.uuid for device in backend.devices())
    backend.set_process(target, 300, 3 * GiB, utilization_percent=20)
    backend.set_process(target, 100, 1 * GiB, utilization_percent=5)
    by_uuid = {sample.uuid: sample for sample in backend.telemetry()}
    assert [(p.pid, p.used_memory_bytes) for p in by_uuid[target].processes] == [(100, GiB), (300, 3 * GiB)]
    assert by_uuid[target].memory_used_bytes == 4 * GiB
    assert by_uuid[target].utilization_percent == 25.0
    assert by_uuid[other].processes == ()

    backend.note_allocations({target: (2 * GiB, 10)})
    sample = backend.telemetry()[0]
    assert 4 * GiB + 0.70 * 2 * GiB <= sample.memory_used_bytes <= 4 * GiB + 0.95 * 2 * GiB
    assert 25.0 + 7.0 <= sample.utilization_percent <= 35.0

    backend.clear_process(target, 300)
    backend.clear_process(target, 300)  # twice is fine
    assert [p.pid for p in backend.telemetry()[0].processes] == [100]


def test_process_memory_is_capped_at_the_device(clock: FakeClock) -> None:
    backend = SimulatedBackend("1x1xT4", clock=clock)
    (device,) = backend.devices()
    backend.set_process(device.uuid, 1, device.memory_total_bytes, utilization_percent=90)
    backend.set_process(device.uuid, 2, GiB, utilization_percent=90)
    sample = backend.telemetry()[0]
    assert sample.memory_used_bytes == device.memory_total_bytes
    assert sample.utilization_percent == 100.0
    assert sum(p.used_memory_bytes for p in sample.processes) == device.memory_total_bytes + GiB


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda b, u: b.set_process("GPU-unknown", 1, GiB), NotFound),
        (lambda b, u: b.clear_process("GPU-unknown", 1), NotFound),
        (lambda b, u: b.set_process(u, 1, -1), InvalidRequest),
        (lambda b, u: b.set_process(u, 1, GiB, utilization_percent=101), InvalidRequest),
    ],
    ids=["set-unknown-device", "clear-unknown-device", "negative-memory", "over-100-percent"],
)
def test_bad_process_calls(call: object, error: type[Exception]) -> None:
    backend = SimulatedBackend("1x1xT4")
    assert callable(call)
    with pytest.raises(error):
        call(backend, backend.devices()[0].uuid)


def test_bad_spec_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="expected NODESxGPUSxMODEL"):
        SimulatedBackend("lots of GPUs")


def test_concurrent_writers_and_readers() -> None:
    backend = SimulatedBackend("2x8xH100-80GB")
    devices = backend.devices()
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for step in range(200):
                device = devices[(step + offset) % len(devices)]
                backend.note_allocations({device.uuid: (GiB, step % 100)})
                backend.set_process(device.uuid, step, GiB)
                backend.clear_process(device.uuid, step - 1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(200):
                assert len(backend.telemetry()) == len(devices)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
