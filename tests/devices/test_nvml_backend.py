"""The NVML backend against a fake `pynvml` (see fake_pynvml.py): MIG, NVLink, N/A fields, errors."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest
from fake_pynvml import (
    ABSENT,
    DOWN,
    H100_MEMORY,
    H100_NAME,
    SWITCH,
    FakeGpu,
    FakeMig,
    FakeNvml,
    GiB,
    MiB,
    mixed_host,
)

from gpupool.devices import NVML_HINT, DeviceBackend, NvmlBackend
from gpupool.errors import DeviceBackendError, NvmlUnavailable

GPU0, GPU1, GPU2 = (gpu.uuid for gpu in mixed_host())
MIG_A, MIG_B = (mig.uuid for mig in mixed_host()[0].mig_slots.values())


def test_speaks_the_device_backend_protocol(fake_nvml: FakeNvml) -> None:
    backend: DeviceBackend = NvmlBackend(node_name="gpu-host-1")
    assert backend.name == "nvml"
    assert fake_nvml.initialized


def test_devices_in_order_with_mig_instances_after_their_parent(fake_nvml: FakeNvml) -> None:
    devices = NvmlBackend(node_name="gpu-host-1").devices()
    assert [(d.uuid, d.index, d.parent_uuid) for d in devices] == [
        (GPU0, 0, None),
        (MIG_A, 0, GPU0),
        (MIG_B, 0, GPU0),
        (GPU1, 1, None),
        (GPU2, 2, None),
    ]
    assert {d.node for d in devices} == {"gpu-host-1"}


def test_node_name_defaults_to_the_hostname(fake_nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "box-7")
    assert NvmlBackend().node_name == "box-7"


@pytest.mark.parametrize(
    ("uuid", "model", "memory_bytes", "sm_count", "mig_capable", "mig_mode"),
    [
        (GPU0, "H100-80GB", H100_MEMORY, 132, True, True),
        (MIG_A, "H100-80GB MIG 3g.40gb", 40192 * MiB, 60, False, False),
        (MIG_B, "H100-80GB MIG 1g.10gb", 9856 * MiB, 16, False, False),
        (GPU1, "H100-80GB", H100_MEMORY, 132, True, False),
        (GPU2, "T4", 15360 * MiB, 40, False, False),  # SMs from the models table: attributes N/A
    ],
    ids=["h100-mig-on", "mig-3g", "mig-1g", "h100-mig-off", "t4"],
)
def test_device_fields(
    fake_nvml: FakeNvml,
    uuid: str,
    model: str,
    memory_bytes: int,
    sm_count: int,
    mig_capable: bool,
    mig_mode: bool,
) -> None:
    device = {d.uuid: d for d in NvmlBackend().devices()}[uuid]
    assert (device.model, device.memory_total_bytes, device.sm_count) == (model, memory_bytes, sm_count)
    assert (device.mig_capable, device.mig_mode) == (mig_capable, mig_mode)


def test_unknown_product_without_attributes_has_zero_sms(install_nvml: Callable[..., FakeNvml]) -> None:
    install_nvml([FakeGpu("GPU-x", "NVIDIA Mystery 9000", bus=1, memory_total=GiB)])
    (device,) = NvmlBackend().devices()
    assert (device.model, device.sm_count) == ("Mystery 9000", 0)


def test_direct_nvlink_peers(fake_nvml: FakeNvml) -> None:
    peers = {d.uuid: d.nvlink_peers for d in NvmlBackend().devices()}
    assert peers == {GPU0: (GPU1,), MIG_A: (), MIG_B: (), GPU1: (GPU0,), GPU2: ()}


def test_a_gap_in_the_links_does_not_hide_later_ones(install_nvml: Callable[..., FakeNvml]) -> None:
    install_nvml(
        [
            FakeGpu("GPU-a", H100_NAME, bus=0x10, memory_total=H100_MEMORY, nvlinks=[DOWN, ABSENT, 0x20]),
            FakeGpu("GPU-b", H100_NAME, bus=0x20, memory_total=H100_MEMORY, nvlinks=[ABSENT]),
        ]
    )
    peers = {d.uuid: d.nvlink_peers for d in NvmlBackend().devices()}
    assert peers == {"GPU-a": ("GPU-b",), "GPU-b": ("GPU-a",)}


def test_nvswitch_peers_every_switched_gpu(install_nvml: Callable[..., FakeNvml]) -> None:
    switched = [
        FakeGpu(f"GPU-s{i}", H100_NAME, bus=0x10 + i, memory_total=H100_MEMORY, nvlinks=[SWITCH] * 4)
        for i in range(3)
    ]
    lonely = FakeGpu("GPU-p", H100_NAME, bus=0x40, memory_total=H100_MEMORY, nvlinks=[DOWN, DOWN])
    install_nvml([*switched, lonely])
    peers = {d.uuid: d.nvlink_peers for d in NvmlBackend().devices()}
    assert peers == {
        "GPU-s0": ("GPU-s1", "GPU-s2"),
        "GPU-s1": ("GPU-s0", "GPU-s2"),
        "GPU-s2": ("GPU-s0", "GPU-s1"),
        "GPU-p": (),
    }


def test_telemetry(fake_nvml: FakeNvml) -> None:
    samples = {s.uuid: s for s in NvmlBackend().telemetry()}
    assert list(samples) == [GPU0, MIG_A, MIG_B, GPU1, GPU2]
    gpu1 = samples[GPU1]
    assert (gpu1.utilization_percent, gpu1.memory_used_bytes) == (87.0, 30 * GiB)
    assert [(p.pid, p.used_memory_bytes) for p in gpu1.processes] == [(100, 20 * GiB), (101, 10 * GiB)]
    # usedGpuMemory None (not accountable) counts as 0 bytes
    assert [(p.pid, p.used_memory_bytes) for p in samples[GPU2].processes] == [(200, 0)]
    # MIG instances have no utilization counter: N/A (never 0, which would read as idle)
    assert samples[MIG_B].utilization_percent is None
    assert [p.pid for p in samples[MIG_B].processes] == [4242]
    assert all(s.timestamp > 0 for s in samples.values())


def test_telemetry_merges_mps_clients_by_pid(install_nvml: Callable[..., FakeNvml]) -> None:
    gpu = FakeGpu("GPU-m", H100_NAME, bus=1, memory_total=H100_MEMORY, sm_count=132)
    gpu.processes = [(10, GiB), (11, 3 * GiB)]  # the MPS server and a client seen both ways
    gpu.mps_processes = [(11, 2 * GiB), (12, 5 * GiB), (13, None)]
    fake = install_nvml([gpu])
    backend = NvmlBackend()
    [sample] = backend.telemetry()
    used = {p.pid: p.used_memory_bytes for p in sample.processes}
    assert used == {10: GiB, 11: 3 * GiB, 12: 5 * GiB, 13: 0}, "one entry per pid, the larger memory"

    fake.failing["nvmlDeviceGetMPSComputeRunningProcesses"] = "NotSupported"
    [sample] = backend.telemetry()
    assert [p.pid for p in sample.processes] == [10, 11], "no MPS list: the compute list alone"


def test_telemetry_follows_the_driver_not_allocations(fake_nvml: FakeNvml) -> None:
    backend = NvmlBackend()
    backend.note_allocations({GPU2: (GiB, 100)})
    fake_nvml.gpus[2].utilization = 55
    assert {s.uuid: s.utilization_percent for s in backend.telemetry()}[GPU2] == 55.0


def test_old_bindings_returning_bytes(install_nvml: Callable[..., FakeNvml]) -> None:
    install_nvml([FakeGpu("GPU-b", "Tesla T4", bus=1, memory_total=GiB, bytes_strings=True)])
    (device,) = NvmlBackend().devices()
    assert (device.uuid, device.model) == ("GPU-b", "T4")


def test_a_lost_gpu_is_left_out(install_nvml: Callable[..., FakeNvml]) -> None:
    gpus = mixed_host()
    gpus[1].lost = True
    install_nvml(gpus)
    assert GPU1 not in {d.uuid for d in NvmlBackend().devices()}


@pytest.mark.parametrize(
    ("init_error", "reason"),
    [
        ("LibraryNotFound", "LibraryNotFound"),
        ("DriverNotLoaded", "DriverNotLoaded"),
        ("LibRmVersionMismatch", "LibRmVersionMismatch"),
        ("NoPermission", "NoPermission"),
    ],
    ids=["no-library", "no-driver", "version-mismatch", "no-permission"],
)
def test_nvml_that_cannot_start_is_unavailable_with_a_hint(
    install_nvml: Callable[..., FakeNvml], init_error: str, reason: str
) -> None:
    install_nvml(mixed_host(), init_error=init_error)
    with pytest.raises(NvmlUnavailable) as info:
        NvmlBackend()
    assert reason in info.value.message
    assert info.value.hint == NVML_HINT
    assert "--simulate" in info.value.hint and "driver" in info.value.hint


def test_missing_binding_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    with pytest.raises(NvmlUnavailable, match="nvidia-ml-py") as info:
        NvmlBackend()
    assert isinstance(info.value.__cause__, ImportError)


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        ("NotSupported", None),
        ("NoPermission", None),
        ("FunctionNotFound", None),
        ("GpuIsLost", None),
        ("DriverNotLoaded", NvmlUnavailable),
        ("Timeout", DeviceBackendError),
    ],
    ids=["not-supported", "no-permission", "old-driver", "gpu-lost", "driver-gone", "timeout"],
)
def test_query_maps_errors(fake_nvml: FakeNvml, error: str, outcome: type[Exception] | None) -> None:
    backend = NvmlBackend()
    handle = fake_nvml.gpus[0]
    assert backend.query("nvmlDeviceGetUUID", handle) == GPU0
    fake_nvml.failing["nvmlDeviceGetUUID"] = error
    if outcome is None:
        assert backend.query("nvmlDeviceGetUUID", handle) is None
    else:
        with pytest.raises(outcome) as info:
            backend.query("nvmlDeviceGetUUID", handle)
        assert "nvmlDeviceGetUUID" in info.value.args[0]
        assert isinstance(info.value, NvmlUnavailable) == (outcome is NvmlUnavailable)


def test_query_of_a_function_the_binding_lacks_is_not_available(fake_nvml: FakeNvml) -> None:
    assert NvmlBackend().query("nvmlDeviceGetSomethingFromTheFuture", fake_nvml.gpus[0]) is None


def test_unsupported_nvlink_and_mig_mean_none(install_nvml: Callable[..., FakeNvml]) -> None:
    fake = install_nvml(mixed_host())
    fake.failing["nvmlDeviceGetNvLinkState"] = "NotSupported"
    fake.failing["nvmlDeviceGetMigMode"] = "NotSupported"
    devices = NvmlBackend().devices()
    assert [d.uuid for d in devices] == [GPU0, GPU1, GPU2]
    assert all(d.nvlink_peers == () and not d.mig_capable for d in devices)


def test_close_shuts_nvml_down_once(fake_nvml: FakeNvml) -> None:
    backend = NvmlBackend()
    backend.close()
    backend.close()
    assert fake_nvml.shutdowns == 1
    with pytest.raises(DeviceBackendError, match="closed"):
        backend.devices()
    with pytest.raises(DeviceBackendError, match="closed"):
        backend.telemetry()


def test_rescan_sees_a_changed_mig_layout(fake_nvml: FakeNvml) -> None:
    backend = NvmlBackend()
    assert len(backend.devices()) == 5
    fake_nvml.gpus[1].mig_mode = 1
    fake_nvml.gpus[1].mig_slots = {0: FakeMig("MIG-new", f"{H100_NAME} MIG 7g.80gb", 80 * GiB, 132)}
    devices = backend.devices()
    assert [d.uuid for d in devices] == [GPU0, MIG_A, MIG_B, GPU1, "MIG-new", GPU2]
    assert [s.uuid for s in backend.telemetry()] == [d.uuid for d in devices]
