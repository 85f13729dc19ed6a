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

    @property
    def is_mig_instance(self) -> bool:
        return self.parent_uuid is not None

    @property
    def schedulable(self) -> bool:
        """False for a GPU in MIG mode: only its instances can be handed out, never the whole card."""
        return not (self.mig_mode and self.parent_uuid is None)


@dataclass(frozen=True)
class ProcessUsage:
    """One process running on a device, as the driver accounts it."""

    pid: int
    used_memory_bytes: int


@dataclass(frozen=True)
class DeviceTelemetry:
    """A sample of what a device is doing right now."""

    uuid: str
    utilization_percent: float | None  # None: N/A (MIG instances have no counter); never "idle"
    memory_used_bytes: int
    processes: tuple[ProcessUsage, ...] = ()
    timestamp: float = 0.0
