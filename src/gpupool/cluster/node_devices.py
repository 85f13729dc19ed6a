"""The device backend of one Ray node, opened inside its agent actor: NVML or a simulated spec.

A simulated spec builds its devices as `sim-node-0`; here they take the node's pool name and
UUIDs derived from it, so every node of the cluster has distinct, restart-stable UUIDs.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping

from gpupool.devices import DeviceBackend, NvmlBackend, SimulatedBackend, simulated_uuid
from gpupool.devices.simulated import UUID_NAMESPACE
from gpupool.errors import DeviceBackendError
from gpupool.model import Device, DeviceTelemetry


class RenamedSimulatedBackend:
    """A one-node simulated pool whose devices belong to node `node_name`."""

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
