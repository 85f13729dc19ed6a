"""A fake `pynvml` module with the API surface gpupool's NVML backend uses, for hosts without GPUs.

Build a host from `FakeGpu`s (or take the canned `mixed_host()`); `FakeNvml.install(monkeypatch)`
puts it in `sys.modules["pynvml"]`.
Like the real binding, every device call before `nvmlInit` (or after `nvmlShutdown`) raises
NVMLError_Uninitialized, and errors are NVMLError subclasses named after the NVML return codes.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

MiB = 1024**2
GiB = 1024**3

# (class name suffix, NVML return code), as nvidia-ml-py names them
_ERROR_CODES = {
    "Uninitialized": 1,
    "InvalidArgument": 2,
    "NotSupported": 3,
    "NoPermission": 4,
    "NotFound": 6,
    "DriverNotLoaded": 9,
    "Timeout": 10,
    "LibraryNotFound": 12,
    "FunctionNotFound": 13,
    "GpuIsLost": 15,
    "LibRmVersionMismatch": 18,
    "Unknown": 999,
}

SWITCH = "switch"  # a link that ends at an NVSwitch
DOWN = "down"  # a link that is present but inactive
ABSENT = "absent"  # a link number this board does not wire: NotSupported, yet later links may work


@dataclass
class FakeMig:
    """One MIG instance in a slot of its parent."""

    uuid: str
    name: str
    memory_total: int
    sm_count: int
    memory_used: int = 0
    processes: list[tuple[int, int | None]] = field(default_factory=list)


@dataclass
class FakeGpu:
    """One physical GPU. None for `mig_mode`, `sm_count`, `utilization` or `nvlinks` means NotSupported.

    `nvlinks` lists each link's far end: a PCI bus number of another GPU, SWITCH, DOWN or ABSENT.
    `mig_slots` maps slot number -> instance; other slots answer NotFound.
    """

    uuid: str
    name: str
    bus: int
    memory_total: int
    memory_used: int = 0
    sm_count: int | None = None
    utilization: int | None = 0
    mig_mode: int | None = None
    mig_slots: dict[int, FakeMig] = field(default_factory=dict)
    max_mig_devices: int = 7
    nvlinks: list[int | str] | None = None
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    # MPS clients (nvmlDeviceGetMPSComputeRunningProcesses); None: the call is NotSupported
    mps_processes: list[tuple[int, int | None]] | None = None
    lost: bool = False  # nvmlDeviceGetHandleByIndex answers GpuIsLost
    bytes_strings: bool = False  # old bindings return bytes for names and UUIDs


class FakeNvml:
    """The state behind one fake module: the GPUs, whether NVML is up, and what was called."""

    def __init__(self, gpus: list[FakeGpu], init_error: str | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.initialized = False
        self.shutdowns = 0
        self.failing: dict[str, str] = {}  # function name -> error name it raises
        self.module = self._build_module()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
        monkeypatch.setitem(sys.modules, "pynvml", self.module)
        return self.module

    def error(self, name: str) -> BaseException:
        cls: type[BaseException] = getattr(self.module, f"NVMLError_{name}")
        return cls()

    # --- the module ---------------------------------------------------------------------------

    def _build_module(self) -> types.ModuleType:
        module = types.ModuleType("pynvml")

        class NVMLError(Exception):
            value = 999

            def __str__(self) -> str:
                return f"{type(self).__name__.removeprefix('NVMLError_')} (code {self.value})"

        module.NVMLError = NVMLError  # type: ignore[attr-defined]
        for suffix, code in _ERROR_CODES.items():
            setattr(module, f"NVMLError_{suffix}", type(f"NVMLError_{suffix}", (NVMLError,), {"value": code}))
        module.NVML_NVLINK_MAX_LINKS = 18  # type: ignore[attr-defined]
        module.NVML_NVLINK_DEVICE_TYPE_GPU = 0  # type: ignore[attr-defined]
        module.NVML_NVLINK_DEVICE_TYPE_SWITCH = 2  # type: ignore[attr-defined]
        module.NVML_DEVICE_MIG_DISABLE = 0  # type: ignore[attr-defined]
        module.NVML_DEVICE_MIG_ENABLE = 1  # type: ignore[attr-defined]
        for name in dir(self):
            if name.startswith("nvml"):
                setattr(module, name, self._guarded(name, getattr(self, name)))
        return module

    def _guarded(self, name: str, func: Any) -> Any:
        def call(*args: Any) -> Any:
            if name in self.failing:
                raise self.error(self.failing[name])
            if name not in ("nvmlInit", "nvmlShutdown") and not self.initialized:
                raise self.error("Uninitialized")
            return func(*args)

        return call

    def _str(self, gpu: FakeGpu, value: str) -> str | bytes:
        return value.encode() if gpu.bytes_strings else value

    def _parent(self, handle: FakeGpu | FakeMig) -> FakeGpu:
        for gpu in self.gpus:
            if handle is gpu or any(handle is mig for mig in gpu.mig_slots.values()):
                return gpu
        raise self.error("InvalidArgument")

    def nvmlInit(self) -> None:
        if self.init_error is not None:
            raise self.error(self.init_error)
        self.initialized = True

    def nvmlShutdown(self) -> None:
        if not self.initialized:
            raise self.error("Uninitialized")
        self.initialized = False
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        if not 0 <= index < len(self.gpus):
            raise self.error("InvalidArgument")
        gpu = self.gpus[index]
        if gpu.lost:
            raise self.error("GpuIsLost")
        return gpu

    def nvmlDeviceGetUUID(self, handle: FakeGpu | FakeMig) -> str | bytes:
        return self._str(self._parent(handle), handle.uuid)

    def nvmlDeviceGetName(self, handle: FakeGpu | FakeMig) -> str | bytes:
        return self._str(self._parent(handle), handle.name)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu | FakeMig) -> Any:
        total, used = handle.memory_total, handle.memory_used
        return types.SimpleNamespace(total=total, used=used, free=total - used)

    def nvmlDeviceGetPciInfo(self, handle: FakeGpu) -> Any:
        return _pci(handle.bus)

    def nvmlDeviceGetAttributes(self, handle: FakeGpu | FakeMig) -> Any:
        if handle.sm_count is None:
            raise self.error("NotSupported")
        memory_mb = handle.memory_total // MiB
        return types.SimpleNamespace(multiprocessorCount=handle.sm_count, memorySizeMB=memory_mb)

    def nvmlDeviceGetMigMode(self, handle: FakeGpu) -> list[int]:
        if not isinstance(handle, FakeGpu) or handle.mig_mode is None:
            raise self.error("NotSupported")
        return [handle.mig_mode, handle.mig_mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle: FakeGpu) -> int:
        if handle.mig_mode is None:
            raise self.error("NotSupported")
        return handle.max_mig_devices

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle: FakeGpu, index: int) -> FakeMig:
        if handle.mig_mode != 1:
            raise self.error("InvalidArgument")
        if index not in handle.mig_slots:
            raise self.error("NotFound")
        return handle.mig_slots[index]

    def _link(self, handle: FakeGpu, link: int) -> int | str:
        if handle.nvlinks is None:
            raise self.error("NotSupported")
        if link >= len(handle.nvlinks):
            raise self.error("InvalidArgument")
        if handle.nvlinks[link] == ABSENT:
            raise self.error("NotSupported")
        return handle.nvlinks[link]

    def nvmlDeviceGetNvLinkState(self, handle: FakeGpu, link: int) -> int:
        return 0 if self._link(handle, link) == DOWN else 1

    def nvmlDeviceGetNvLinkRemotePciInfo(self, handle: FakeGpu, link: int) -> Any:
        remote = self._link(handle, link)
        return _pci(remote if isinstance(remote, int) else 0xC0 + link)

    def nvmlDeviceGetNvLinkRemoteDeviceType(self, handle: FakeGpu, link: int) -> int:
        return 2 if self._link(handle, link) == SWITCH else 0

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu | FakeMig) -> Any:
        if not isinstance(handle, FakeGpu) or handle.utilization is None:
            raise self.error("NotSupported")  # as on MIG instances
        return types.SimpleNamespace(gpu=handle.utilization, memory=0)

    def nvmlDeviceGetComputeRunningProcesses(self, handle: FakeGpu | FakeMig) -> list[Any]:
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in handle.processes]

    def nvmlDeviceGetMPSComputeRunningProcesses(self, handle: FakeGpu | FakeMig) -> list[Any]:
        if not isinstance(handle, FakeGpu) or handle.mps_processes is None:
            raise self.error("NotSupported")
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in handle.mps_processes]


def _pci(bus: int) -> Any:
    return types.SimpleNamespace(domain=0, bus=bus, device=0, busId=f"00000000:{bus:02X}:00.0")


H100_NAME = "NVIDIA H100 80GB HBM3"
H100_MEMORY = 81559 * MiB


def mixed_host() -> list[FakeGpu]:
    """GPU0: H100 in MIG mode (slots 0 and 2 used), NVLinked to GPU1; GPU1: H100, MIG off; GPU2: T4."""
    mig_a = FakeMig("MIG-aaaaaaaa-0000-0000-0000-000000000001", f"{H100_NAME} MIG 3g.40gb", 40192 * MiB, 60)
    mig_b = FakeMig("MIG-aaaaaaaa-0000-0000-0000-000000000002", f"{H100_NAME} MIG 1g.10gb", 9856 * MiB, 16)
    mig_b.processes = [(4242, 2 * GiB)]
    return [
        FakeGpu(
            uuid="GPU-00000000-0000-0000-0000-000000000000",
            name=H100_NAME,
            bus=0x18,
            memory_total=H100_MEMORY,
            sm_count=132,
            mig_mode=1,
            mig_slots={0: mig_a, 2: mig_b},
            nvlinks=[0x2A, 0x2A, DOWN],
        ),
        FakeGpu(
            uuid="GPU-11111111-1111-1111-1111-111111111111",
            name=H100_NAME,
            bus=0x2A,
            memory_total=H100_MEMORY,
            memory_used=30 * GiB,
            sm_count=132,
            utilization=87,
            mig_mode=0,
            nvlinks=[0x18, 0x18],
            processes=[(100, 20 * GiB), (101, 10 * GiB)],
        ),
        FakeGpu(
            uuid="GPU-22222222-2222-2222-2222-222222222222",
            name="Tesla T4",
            bus=0x3B,
            memory_total=15360 * MiB,
            memory_used=1 * GiB,
            utilization=12,
            processes=[(200, None)],
        ),
    ]
