"""A pool of fake GPUs with believable telemetry, for tests, demos and laptops.

Devices come from a spec (`2x8xH100-80GB`) and keep the same UUIDs across restarts. Utilization
and memory follow what the pool says is allocated (`note_allocations`) plus any simulated
processes (`set_process`), with a slow deterministic wobble so dashboards look alive.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from gpupool.devices.spec import SimulatedNode, node_layout, parse_spec
from gpupool.errors import InvalidRequest, NotFound
from gpupool.model import Device, DeviceTelemetry, MiB, ProcessUsage
from gpupool.model.mig import MIG_SLICES, instance_model, profile_slices

UUID_NAMESPACE = uuid.UUID("6f1d2b1e-8c3a-5e57-9a3c-67707570f06c")
"""Namespace of simulated device UUIDs (uuid5); changing it renames every simulated device."""

WOBBLE_PERIOD_S = 30.0
"""Period of the utilization wobble, in seconds."""
MEMORY_PERIOD_S = 90.0
"""Period of the memory-use drift, in seconds."""
UTILIZATION_WOBBLE = (0.70, 1.00)
"""Utilization is allocated compute percent times a factor in this range."""
MEMORY_FILL = (0.70, 0.95)
"""Memory used is allocated memory times a factor in this range."""
MIG_MEMORY_PER_GB = 985 * MiB
"""Memory of a MIG instance per GB in its profile name (an H100's 1g.10gb shows 9856 MiB)."""


def simulated_uuid(model_name: str, node_name: str, index: int) -> str:
    """A stable NVML-style UUID, `GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, for one simulated slot.

    It depends on the model, node name and index only, so a pool grown by appending a group
    keeps the UUIDs of its existing devices.
    """
    return f"GPU-{uuid.uuid5(UUID_NAMESPACE, f'{model_name}/{node_name}/{index}')}"


@functools.cache  # two per device per sample: 16,000 SHA-1s every 2 s on a 1,000x8 pool otherwise
def _phase(device_uuid: str, salt: str) -> float:
    """A per-device phase in [0, 2*pi), stable across runs (not Python's salted hash)."""
    digest = hashlib.sha1(f"{salt}:{device_uuid}".encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 * 2 * math.pi


def _between(bounds: tuple[float, float], wave: float) -> float:
    """Map a wave in [-1, 1] onto `bounds`."""
    low, high = bounds
    return low + (high - low) * (wave + 1) / 2


@dataclass
class _SimulatedProcess:
    used_memory_bytes: int
    utilization_percent: float


def _build_devices(nodes: tuple[SimulatedNode, ...]) -> list[Device]:
    devices: list[Device] = []
    for node in nodes:
        uuids = [simulated_uuid(node.model.name, node.name, index) for index in range(node.gpus)]
        for index, device_uuid in enumerate(uuids):
            peers = tuple(peer for peer in uuids if peer != device_uuid) if node.model.nvlink else ()
            parent = Device(
                uuid=device_uuid,
                node=node.name,
                index=index,
                model=node.model.name,
                memory_total_bytes=node.model.memory_total_bytes,
                sm_count=node.model.sm_count,
                mig_capable=node.model.mig_capable,
                mig_mode=bool(node.mig),
                nvlink_peers=peers,
            )
            devices.append(parent)
            devices += _mig_instances(parent, node.mig)
    return devices


def _mig_instances(parent: Device, profiles: tuple[str, ...]) -> list[Device]:
    """The parent's MIG instances, as NVML lists them: after the parent, with its index."""
    instances = []
    for slot, profile in enumerate(profiles):
        slices, gb = profile_slices(profile)
        name = f"{parent.uuid}/mig/{slot}"
        instances.append(
            Device(
                uuid=f"MIG-{uuid.uuid5(UUID_NAMESPACE, name)}",
                node=parent.node,
                index=parent.index,
                model=instance_model(parent.model, profile),
                memory_total_bytes=min(gb * MIG_MEMORY_PER_GB, parent.memory_total_bytes),
                sm_count=parent.sm_count * slices // (MIG_SLICES + 1) or 1,
                parent_uuid=parent.uuid,
            )
        )
    return instances


class SimulatedBackend:
    """Fake devices from a spec such as `2x8xH100-80GB,1x4xA100-40GB`; thread-safe.

    `clock` returns seconds (default `time.time`); tests pass a fixed one for exact telemetry.
    """

    name = "simulated"

    def __init__(self, spec: str, *, clock: Callable[[], float] = time.time) -> None:
        self._spec = spec.strip()
        self._clock = clock
        self._devices = _build_devices(node_layout(parse_spec(self._spec)))
        self._by_uuid = {device.uuid: device for device in self._devices}
        self._lock = threading.Lock()
        self._allocations: dict[str, tuple[int, int]] = {}
        self._processes: dict[str, dict[int, _SimulatedProcess]] = {}

    @property
    def spec(self) -> str:
        """The spec this pool was built from, stripped of surrounding blanks."""
        return self._spec

    def devices(self) -> list[Device]:
        """Every simulated device, ordered by node then index."""
        return list(self._devices)

    def note_allocations(self, allocations: Mapping[str, tuple[int, int]]) -> None:
        """Replace what is bound per device UUID: (memory bytes, compute percent).

        UUIDs this pool does not hold are ignored (the pool may span other backends); memory is
        clamped to the device, compute to 0..100.
        """
        cleaned: dict[str, tuple[int, int]] = {}
        for device_uuid, (memory_bytes, compute_percent) in allocations.items():
            device = self._by_uuid.get(device_uuid)
            if device is None:
                continue
            memory = max(0, min(int(memory_bytes), device.memory_total_bytes))
            compute = max(0, min(int(compute_percent), 100))
            if memory or compute:
                cleaned[device_uuid] = (memory, compute)
        with self._lock:
            self._allocations = cleaned

    def set_process(
        self, device_uuid: str, pid: int, used_memory_bytes: int, utilization_percent: float = 0.0
    ) -> None:
        """Pretend process `pid` runs on the device, using that many bytes and percent of the GPU."""
        self._require(device_uuid)
        if used_memory_bytes < 0:
            raise InvalidRequest(f"used_memory_bytes: must be >= 0, got {used_memory_bytes}")
        if not 0 <= utilization_percent <= 100:
            raise InvalidRequest(f"utilization_percent: must be within 0..100, got {utilization_percent}")
        with self._lock:
            self._processes.setdefault(device_uuid, {})[pid] = _SimulatedProcess(
                used_memory_bytes, float(utilization_percent)
            )

    def clear_process(self, device_uuid: str, pid: int) -> None:
        """Forget process `pid` on the device; forgetting an unknown pid is not an error."""
        self._require(device_uuid)
        with self._lock:
            self._processes.get(device_uuid, {}).pop(pid, None)

    def telemetry(self) -> list[DeviceTelemetry]:
        """One sample per device at `clock()`; all zero for an idle device."""
        now = self._clock()
        with self._lock:
            allocations = dict(self._allocations)
            processes = {key: dict(value) for key, value in self._processes.items() if value}
        return [
            self._sample(device, now, allocations, processes.get(device.uuid, {})) for device in self._devices
        ]

    def close(self) -> None:
        """Nothing to release; present for the protocol."""

    def _require(self, device_uuid: str) -> Device:
        device = self._by_uuid.get(device_uuid)
        if device is None:
            raise NotFound(f"no simulated device {device_uuid!r} in pool {self._spec!r}")
        return device

    @staticmethod
    def _sample(
        device: Device,
        now: float,
        allocations: Mapping[str, tuple[int, int]],
        processes: Mapping[int, _SimulatedProcess],
    ) -> DeviceTelemetry:
        memory_bytes, compute_percent = allocations.get(device.uuid, (0, 0))
        if device.mig_mode or device.is_mig_instance:
            # As on real cards: no utilization counter in MIG mode, memory as the processes use it.
            used = sum(process.used_memory_bytes for process in processes.values())
            return DeviceTelemetry(
                uuid=device.uuid,
                utilization_percent=None,
                memory_used_bytes=min(used, device.memory_total_bytes),
                processes=_process_usage(processes),
                timestamp=now,
            )
        wobble = math.sin(2 * math.pi * now / WOBBLE_PERIOD_S + _phase(device.uuid, "util"))
        drift = math.sin(2 * math.pi * now / MEMORY_PERIOD_S + _phase(device.uuid, "memory"))
        utilization = compute_percent * _between(UTILIZATION_WOBBLE, wobble)
        memory_used = int(memory_bytes * _between(MEMORY_FILL, drift))
        utilization += sum(process.utilization_percent for process in processes.values())
        memory_used += sum(process.used_memory_bytes for process in processes.values())
        return DeviceTelemetry(
            uuid=device.uuid,
            utilization_percent=round(min(utilization, 100.0), 1),
            memory_used_bytes=min(memory_used, device.memory_total_bytes),
            processes=_process_usage(processes),
            timestamp=now,
        )


def _process_usage(processes: Mapping[int, _SimulatedProcess]) -> tuple[ProcessUsage, ...]:
    return tuple(
        ProcessUsage(pid=pid, used_memory_bytes=processes[pid].used_memory_bytes) for pid in sorted(processes)
    )


class RenamedSimulatedBackend:
    """A one-node simulated pool whose devices belong to host `node_name` (a Ray or Kubernetes node).

    A spec builds its devices as `sim-node-0`; here they take the host's name and UUIDs derived
    from it, so every host has distinct, restart-stable UUIDs.
    """

    name = "simulated"

    def __init__(self, spec: str, node_name: str) -> None:
        self.inner = SimulatedBackend(spec)
        self._to_outer: dict[str, str] = {}
        self._devices: list[Device] = []
        for device in self.inner.devices():
            if device.is_mig_instance:  # instances share their parent's model name and index
                outer_uuid = f"MIG-{uuid.uuid5(UUID_NAMESPACE, f'{node_name}/{device.uuid}')}"
            else:
                outer_uuid = simulated_uuid(device.model, node_name, device.index)
            self._to_outer[device.uuid] = outer_uuid
        for device in self.inner.devices():
            peers = tuple(self._to_outer[peer] for peer in device.nvlink_peers)
            outer = self._to_outer[device.uuid]
            parent = self._to_outer[device.parent_uuid] if device.parent_uuid else None
            self._devices.append(
                dataclasses.replace(
                    device, uuid=outer, node=node_name, nvlink_peers=peers, parent_uuid=parent
                )
            )
        self._to_inner = {outer: inner for inner, outer in self._to_outer.items()}

    def devices(self) -> list[Device]:
        return list(self._devices)

    def telemetry(self) -> list[DeviceTelemetry]:
        return [dataclasses.replace(t, uuid=self._to_outer[t.uuid]) for t in self.inner.telemetry()]

    def note_allocations(self, allocations: Mapping[str, tuple[int, int]]) -> None:
        self.inner.note_allocations(
            {self._to_inner[uuid]: value for uuid, value in allocations.items() if uuid in self._to_inner}
        )

    def close(self) -> None:
        self.inner.close()
