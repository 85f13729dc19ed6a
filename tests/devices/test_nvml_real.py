"""The NVML backend on a real NVIDIA GPU; skipped where NVML cannot start (no GPU, no driver)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from gpupool.devices import NvmlBackend, open_backend
from gpupool.errors import NvmlUnavailable

pytestmark = pytest.mark.gpu


def nvml_or_skip() -> NvmlBackend:
    """A live NVML backend, or skip the test with the reason NVML gave."""
    try:
        backend = NvmlBackend()
    except NvmlUnavailable as exc:
        pytest.skip(f"no usable NVML: {exc.message}")
    if not backend.devices():
        backend.close()
        pytest.skip("NVML sees no GPU")
    return backend


@pytest.fixture
def nvml() -> Iterator[NvmlBackend]:
    backend = nvml_or_skip()
    yield backend
    backend.close()


def test_real_devices(nvml: NvmlBackend) -> None:
    devices = nvml.devices()
    physical = [d for d in devices if d.parent_uuid is None]
    assert physical, "at least one physical GPU"
    assert [d.index for d in physical] == sorted(d.index for d in physical)
    for device in physical:
        assert re.match(r"^GPU-[0-9a-f]{8}-[0-9a-f]{4}-", device.uuid), device.uuid
        assert device.memory_total_bytes > 1024**3
        assert device.model and not device.model.startswith("NVIDIA ")
        assert device.sm_count >= 0
        assert device.uuid not in device.nvlink_peers
    for instance in (d for d in devices if d.parent_uuid is not None):
        assert instance.uuid.startswith("MIG-")
        assert any(d.uuid == instance.parent_uuid and d.mig_mode for d in physical)


def test_real_telemetry(nvml: NvmlBackend) -> None:
    devices = nvml.devices()
    samples = nvml.telemetry()
    assert [s.uuid for s in samples] == [d.uuid for d in devices]
    for device, sample in zip(devices, samples, strict=True):
        assert 0.0 <= sample.utilization_percent <= 100.0
        assert 0 <= sample.memory_used_bytes <= device.memory_total_bytes
        assert all(p.pid > 0 and p.used_memory_bytes >= 0 for p in sample.processes)


def test_open_backend_picks_nvml_on_a_gpu_host() -> None:
    nvml_or_skip().close()
    backend, notice = open_backend(None)
    try:
        assert isinstance(backend, NvmlBackend)
        assert notice is None
    finally:
        backend.close()
