"""The one protocol every device backend speaks; the pool sees only frozen snapshots."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from gpupool.model import Device, DeviceTelemetry


class DeviceBackend(Protocol):
    """A source of devices and telemetry: `nvml` on real GPUs, `simulated` everywhere else."""

    name: str

    def devices(self) -> list[Device]:
        """Every device this backend sees, in a stable order (node, index)."""
        ...

    def telemetry(self) -> list[DeviceTelemetry]:
        """A fresh sample of utilization, memory used and processes, one per device."""
        ...

    def note_allocations(self, allocations: Mapping[str, tuple[int, int]]) -> None:
        """Tell the backend what is bound per device UUID: (memory bytes, compute percent).

        Real backends ignore it; the simulated backend makes its utilization follow it.
        """
        ...

    def close(self) -> None: ...
