"""The device backend of one Ray node, opened inside its agent actor: NVML or a simulated spec
(`RenamedSimulatedBackend`: devices named after the node, with UUIDs derived from it)."""

from __future__ import annotations

from collections.abc import Mapping

from gpupool.devices import DeviceBackend, NvmlBackend, RenamedSimulatedBackend
from gpupool.errors import DeviceBackendError
from gpupool.model import Device, DeviceTelemetry

__all__ = ["EmptyBackend", "RenamedSimulatedBackend", "open_node_backend"]


class EmptyBackend:
    """A node without usable GPUs (no NVML, no simulate label): it contributes no devices."""

    name = "none"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def devices(self) -> list[Device]:
        return []

    def telemetry(self) -> list[DeviceTelemetry]:
        return []

    def note_allocations(self, allocations: Mapping[str, tuple[int, int]]) -> None:
        """Nothing is bound here."""

    def close(self) -> None:
        """Nothing to release."""


def open_node_backend(node_name: str, simulate: str | None) -> DeviceBackend:
    """The node's backend: simulated when a spec is given, else NVML, else an empty one."""
    if simulate is not None:
        return RenamedSimulatedBackend(simulate, node_name)
    try:
        backend = NvmlBackend(node_name=node_name)
    except DeviceBackendError as exc:
        return EmptyBackend(exc.message)
    return backend
