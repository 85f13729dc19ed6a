"""Devices as frozen snapshots: the rest of gpupool never holds a live NVML handle."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Device:
    """One physical GPU (or MIG instance) on a node, known by its UUID."""

    uuid: str
    node: str
    index: int
    model: str
    memory_total_bytes: int
    sm_count: int = 0
    mig_capable: bool = False
    mig_mode: bool = False
    parent_uuid: str | None = None  # set for a MIG instance: the GPU it lives on
    nvlink_peers: tuple[str, ...] = field(default_factory=tuple)  # UUIDs reachable by NVLink


@dataclass(frozen=True)
class ProcessUsage:
    """One process running on a device, as the driver accounts it."""

    pid: int
    used_memory_bytes: int


@dataclass(frozen=True)
class DeviceTelemetry:
    """A sample of what a device is doing right now."""

    uuid: str
    utilization_percent: float
    memory_used_bytes: int
    processes: tuple[ProcessUsage, ...] = ()
    timestamp: float = 0.0
