"""NVML device backend: the only module of gpupool that imports the NVML binding (nvidia-ml-py).

After nvitop: one query helper turns "this GPU or driver does not support that field" into None
(N/A), and an NVML that cannot be loaded into one typed error, `NvmlUnavailable`, with a hint.
The binding is imported lazily, so importing gpupool never needs it. The rest of gpupool sees
frozen `Device` / `DeviceTelemetry` snapshots, never a live handle.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpupool.devices.models import canonical_model_name, model_for_product_name
from gpupool.errors import DeviceBackendError, NvmlUnavailable
from gpupool.model import Device, DeviceTelemetry, MiB, ProcessUsage

NVML_HINT = "install the NVIDIA driver, run on a GPU host, or use --simulate SPEC (e.g. 1x4xH100-80GB)"

# NVML cannot be used at all: the library or driver is missing or does not match.
_UNAVAILABLE_ERRORS = (
    "NVMLError_LibraryNotFound",
    "NVMLError_DriverNotLoaded",
    "NVMLError_LibRmVersionMismatch",
)
# This GPU, driver or user cannot answer this one question: report N/A and go on.
_NOT_AVAILABLE_ERRORS = (
    "NVMLError_NotSupported",
    "NVMLError_NoPermission",
    "NVMLError_NotFound",
    "NVMLError_InvalidArgument",
    "NVMLError_FunctionNotFound",
    "NVMLError_GpuIsLost",
    "NVMLError_NoData",
    "NVMLError_NotReady",
    "NVMLError_Unknown",
)
_DEFAULT_MAX_NVLINKS = 18  # NVLink 4 (H100); the binding's NVML_NVLINK_MAX_LINKS wins when present
_NVLINK_ACTIVE = 1  # NVML_FEATURE_ENABLED
_NVLINK_REMOTE_SWITCH = 2  # NVML_NVLINK_DEVICE_TYPE_SWITCH
_MIG_ENABLED = 1  # NVML_DEVICE_MIG_ENABLE


def load_nvml() -> Any:
    """Import the NVML binding (`pynvml` from nvidia-ml-py); NvmlUnavailable when it is not installed."""
    try:
        import pynvml
    except ImportError as exc:
        raise NvmlUnavailable(
            "the NVML binding (pip package nvidia-ml-py) is not installed", NVML_HINT
        ) from exc
    return pynvml


def _error_classes(nvml: Any, names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    return tuple(cls for name in names if isinstance(cls := getattr(nvml, name, None), type))


def _text(value: Any) -> str | None:
    """NVML strings arrive as bytes or str depending on the binding version."""
    if value is None:
        return None
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _pci_key(info: Any) -> tuple[int, int, int] | None:
    """(domain, bus, device) of an nvmlPciInfo_t; bus-id strings differ in domain width, numbers do not."""
    if info is None:
        return None
    return int(info.domain), int(info.bus), int(info.device)


@dataclass(frozen=True)
class _Gpu:
    """What one scan learned about a physical GPU before it becomes a Device."""

    index: int
    handle: Any
    uuid: str
    product_name: str
    pci_key: tuple[int, int, int] | None


class NvmlBackend:
    """Devices and telemetry of the local host's NVIDIA GPUs; thread-safe.

    Raises NvmlUnavailable (with a hint) when the binding, library or driver is missing.
    MIG instances of a GPU in MIG mode are listed as their own Devices after their parent,
    with `parent_uuid` set and the parent's `index`.
    """

    name = "nvml"

    def __init__(self, node_name: str | None = None) -> None:
        self.node_name = node_name or socket.gethostname()
        self._nvml = load_nvml()
        self._unavailable = _error_classes(self._nvml, _UNAVAILABLE_ERRORS)
        self._not_available = _error_classes(self._nvml, _NOT_AVAILABLE_ERRORS)
        self._lock = threading.Lock()
        self._handles: dict[str, Any] = {}  # UUID -> handle, in device order, from the last scan
        self._closed = False
        try:
            self._nvml.nvmlInit()
        except (self._nvml.NVMLError, OSError) as exc:
            raise NvmlUnavailable(f"NVML could not start: {exc}", NVML_HINT) from exc

    def query(self, function: str, *args: Any) -> Any | None:
        """Call NVML `function`; None (N/A) when the GPU, driver or binding does not support it.

        Raises NvmlUnavailable when NVML itself is gone, DeviceBackendError for other failures.
        """
        func = getattr(self._nvml, function, None)
        if func is None:  # a binding older than the call
            return None
        try:
            return func(*args)
        except self._not_available:
            return None
        except self._unavailable as exc:
            raise NvmlUnavailable(f"NVML {function} failed: {exc}", NVML_HINT) from exc
        except self._nvml.NVMLError as exc:
            raise DeviceBackendError(f"NVML {function} failed: {exc}") from exc

    def devices(self) -> list[Device]:
        """Scan the GPUs now: physical GPUs by index, each followed by its MIG instances."""
        with self._lock:
            self._check_open()
            return self._scan()

    def telemetry(self) -> list[DeviceTelemetry]:
        """Utilization (percent, None when N/A), memory used (bytes) and compute processes per device."""
        with self._lock:
            self._check_open()
            if not self._handles:
                self._scan()
            now = time.time()
            return [self._sample(device_uuid, handle, now) for device_uuid, handle in self._handles.items()]

    def note_allocations(self, allocations: Mapping[str, tuple[int, int]]) -> None:
        """Real GPUs report what really runs; allocations do not change the telemetry."""

    def close(self) -> None:
        """Shut NVML down; later calls raise DeviceBackendError. Closing twice is harmless."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._handles = {}
            # shutting down a half-broken NVML must not hide the caller's own error
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceBackendError("the NVML backend is closed")

    def _scan(self) -> list[Device]:
        gpus = self._physical_gpus()
        peers = self._nvlink_peers(gpus)
        devices: list[Device] = []
        handles: dict[str, Any] = {}
        for gpu in gpus:
            parent = self._gpu_device(gpu, peers[gpu.uuid])
            devices.append(parent)
            handles[gpu.uuid] = gpu.handle
            if parent.mig_mode:
                for instance, handle in self._mig_instances(gpu, parent):
                    devices.append(instance)
                    handles[instance.uuid] = handle
        self._handles = handles
        return devices

    def _physical_gpus(self) -> list[_Gpu]:
        gpus: list[_Gpu] = []
        for index in range(int(self.query("nvmlDeviceGetCount") or 0)):
            handle = self.query("nvmlDeviceGetHandleByIndex", index)
            device_uuid = _text(self.query("nvmlDeviceGetUUID", handle)) if handle is not None else None
            if handle is None or not device_uuid:
                continue  # lost or forbidden GPU: leave it out rather than guess
            product = _text(self.query("nvmlDeviceGetName", handle)) or "unknown"
            pci_key = _pci_key(self.query("nvmlDeviceGetPciInfo", handle))
            gpus.append(_Gpu(index, handle, device_uuid, product, pci_key))
        return gpus

    def _gpu_device(self, gpu: _Gpu, nvlink_peers: tuple[str, ...]) -> Device:
        known = model_for_product_name(gpu.product_name)
        memory = self.query("nvmlDeviceGetMemoryInfo", gpu.handle)
        attributes = self.query("nvmlDeviceGetAttributes", gpu.handle)
        sm_count = int(attributes.multiprocessorCount) if attributes is not None else 0
        if sm_count == 0 and known is not None:
            sm_count = known.sm_count
        mig = self.query("nvmlDeviceGetMigMode", gpu.handle)  # [current, pending]; N/A without MIG
        return Device(
            uuid=gpu.uuid,
            node=self.node_name,
            index=gpu.index,
            model=canonical_model_name(gpu.product_name),
            memory_total_bytes=int(memory.total) if memory is not None else 0,
            sm_count=sm_count,
            mig_capable=mig is not None,
            mig_mode=mig is not None and int(mig[0]) == _MIG_ENABLED,
            nvlink_peers=nvlink_peers,
        )

    def _mig_instances(self, gpu: _Gpu, parent: Device) -> list[tuple[Device, Any]]:
        instances: list[tuple[Device, Any]] = []
        for slot in range(int(self.query("nvmlDeviceGetMaxMigDeviceCount", gpu.handle) or 0)):
            handle = self.query("nvmlDeviceGetMigDeviceHandleByIndex", gpu.handle, slot)
            device_uuid = _text(self.query("nvmlDeviceGetUUID", handle)) if handle is not None else None
            if handle is None or not device_uuid:
                continue  # an empty slot
            name = _text(self.query("nvmlDeviceGetName", handle)) or ""
            attributes = self.query("nvmlDeviceGetAttributes", handle)
            memory = self.query("nvmlDeviceGetMemoryInfo", handle)
            if memory is not None:
                memory_total = int(memory.total)
            else:
                memory_total = int(attributes.memorySizeMB) * MiB if attributes is not None else 0
            device = Device(
                uuid=device_uuid,
                node=self.node_name,
                index=parent.index,
                model=_mig_model(parent.model, gpu.product_name, name),
                memory_total_bytes=memory_total,
                sm_count=int(attributes.multiprocessorCount) if attributes is not None else 0,
                parent_uuid=parent.uuid,
            )
            instances.append((device, handle))
        return instances

    def _nvlink_peers(self, gpus: list[_Gpu]) -> dict[str, tuple[str, ...]]:
        """UUIDs each GPU reaches over an active NVLink, directly or through an NVSwitch."""
        by_pci = {gpu.pci_key: gpu.uuid for gpu in gpus if gpu.pci_key is not None}
        max_links = int(getattr(self._nvml, "NVML_NVLINK_MAX_LINKS", _DEFAULT_MAX_NVLINKS))
        switch_type = getattr(self._nvml, "NVML_NVLINK_DEVICE_TYPE_SWITCH", _NVLINK_REMOTE_SWITCH)
        peers: dict[str, set[str]] = {gpu.uuid: set() for gpu in gpus}
        on_switch: set[str] = set()
        for gpu in gpus:
            for link in range(max_links):
                state = self.query("nvmlDeviceGetNvLinkState", gpu.handle, link)
                if state is None and link == 0:
                    break  # no NVLink on this GPU at all
                if state != _NVLINK_ACTIVE:
                    continue
                remote_pci = _pci_key(self.query("nvmlDeviceGetNvLinkRemotePciInfo", gpu.handle, link))
                remote = by_pci.get(remote_pci) if remote_pci is not None else None
                if remote is not None and remote != gpu.uuid:
                    peers[gpu.uuid].add(remote)
                    peers[remote].add(gpu.uuid)
                elif self.query("nvmlDeviceGetNvLinkRemoteDeviceType", gpu.handle, link) == switch_type:
                    on_switch.add(gpu.uuid)  # HGX boards: every GPU's links end at NVSwitches
        for device_uuid in on_switch:
            peers[device_uuid] |= on_switch - {device_uuid}
        return {gpu.uuid: tuple(g.uuid for g in gpus if g.uuid in peers[gpu.uuid]) for gpu in gpus}

    def _sample(self, device_uuid: str, handle: Any, now: float) -> DeviceTelemetry:
        rates = self.query("nvmlDeviceGetUtilizationRates", handle)  # N/A on MIG instances
        memory = self.query("nvmlDeviceGetMemoryInfo", handle)
        return DeviceTelemetry(
            uuid=device_uuid,
            utilization_percent=float(rates.gpu) if rates is not None else None,
            memory_used_bytes=int(memory.used) if memory is not None else 0,
            processes=self._processes(handle),
            timestamp=now,
        )

    def _processes(self, handle: Any) -> tuple[ProcessUsage, ...]:
        """Compute processes of a device, MPS clients included, one per pid (the larger memory).

        Under MPS the clients are listed by nvmlDeviceGetMPSComputeRunningProcesses, not by
        nvmlDeviceGetComputeRunningProcesses (which then shows the MPS server); the watchdog needs
        the clients. Either list may be N/A. Untested on a real MPS card so far.
        """
        used_by_pid: dict[int, int] = {}
        for function in ("nvmlDeviceGetComputeRunningProcesses", "nvmlDeviceGetMPSComputeRunningProcesses"):
            for process in self.query(function, handle) or []:
                pid = int(process.pid)
                # usedGpuMemory is None where the driver cannot account it (WDDM, some containers)
                used = int(process.usedGpuMemory or 0)
                used_by_pid[pid] = max(used, used_by_pid.get(pid, 0))
        return tuple(ProcessUsage(pid, used) for pid, used in used_by_pid.items())


def _mig_model(parent_model: str, parent_product: str, instance_name: str) -> str:
    """After the parent: "NVIDIA H100 80GB HBM3 MIG 1g.10gb" -> "H100-80GB MIG 1g.10gb"."""
    if instance_name.startswith(parent_product):
        suffix = instance_name[len(parent_product) :].strip()
        return f"{parent_model} {suffix}" if suffix else parent_model
    return canonical_model_name(instance_name) if instance_name else parent_model
