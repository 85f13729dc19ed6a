"""`KubeNodeBackend`: the pool's devices are those the Kubernetes nodes declare in annotations.

A node's devices come from `gpupool.io/devices` (JSON written by `gpupool kube node-agent` from
NVML on that node) or, for tests and demos, `gpupool.io/simulate: 4xH100-80GB` (simulated GPUs
named after the node). Devices belong to the Kubernetes node of the same name, so the node
kube-scheduler picks is the node the claim binds on. A node whose annotation is malformed
contributes no device and its problem is kept for the log (it never takes the others down).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gpupool.devices import RenamedSimulatedBackend, one_node_spec
from gpupool.errors import InvalidRequest
from gpupool.kube import keys
from gpupool.model import Device, DeviceTelemetry
from gpupool.model.units import MAX_SIZE_BYTES

log = logging.getLogger("gpupool.kube")

MAX_REPORTED_DEVICES = 128  # GPUs and MIG instances of one node
MAX_REPORT_CHARS = 64 * 1024


class ReportedDevice(BaseModel):
    """One device as a node agent reports it in the `gpupool.io/devices` annotation."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    uuid: str = Field(min_length=1, max_length=96, pattern=r"^[A-Za-z0-9_./:-]+$")
    index: int = Field(ge=0, le=1024)
    model: str = Field(min_length=1, max_length=128)
    memory_total_bytes: int = Field(gt=0, le=MAX_SIZE_BYTES)
    sm_count: int = Field(0, ge=0, le=1_000_000)
    mig_capable: bool = False
    mig_mode: bool = False
    parent_uuid: str | None = Field(None, max_length=96)
    nvlink_peers: list[str] = Field(default_factory=list, max_length=MAX_REPORTED_DEVICES)


_REPORT = TypeAdapter(list[ReportedDevice])


def devices_annotation(devices: Iterable[Device]) -> str:
    """The `gpupool.io/devices` value for a node's devices (what `devices_from_annotation` reads)."""
    reported = [ReportedDevice.model_validate(dataclasses.asdict(d)) for d in devices]
    return json.dumps([r.model_dump(exclude_defaults=True) for r in reported], separators=(",", ":"))


def devices_from_annotation(node: str, text: str) -> list[Device]:
    """The devices of `node` from its `gpupool.io/devices` annotation; InvalidRequest when malformed."""
    where = f"node {node}: annotation {keys.NODE_DEVICES}"
    if len(text) > MAX_REPORT_CHARS:
        raise InvalidRequest(f"{where}: longer than {MAX_REPORT_CHARS} characters")
    try:
        reported = _REPORT.validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        place = ".".join(str(part) for part in first["loc"])
        raise InvalidRequest(f"{where}: {place}: {first['msg']}") from None
    if len(reported) > MAX_REPORTED_DEVICES:
        raise InvalidRequest(f"{where}: at most {MAX_REPORTED_DEVICES} devices")
    if len({r.uuid for r in reported}) != len(reported):
        raise InvalidRequest(f"{where}: a device UUID appears twice")
    # The node is the Kubernetes node that carries the annotation, whatever the agent thought.
    return [
        Device(**{**r.model_dump(), "node": node, "nvlink_peers": tuple(r.nvlink_peers)}) for r in reported
    ]


@dataclass(frozen=True)
class _NodeInventory:
    source: tuple[str, str]  # (annotation, value) it was built from: rebuilt only when that changes
    devices: tuple[Device, ...]
    simulated: RenamedSimulatedBackend | None = None
    problem: str = ""


def _node_inventory(node: str, notes: Mapping[str, str]) -> _NodeInventory | None:
    reported = notes.get(keys.NODE_DEVICES)
    simulate = notes.get(keys.NODE_SIMULATE)
    try:
        if reported is not None:
            source = (keys.NODE_DEVICES, reported)
            return _NodeInventory(source, tuple(devices_from_annotation(node, reported)))
        if simulate is not None:
            source = (keys.NODE_SIMULATE, simulate)
            where = f"node {node}: annotation {keys.NODE_SIMULATE}={simulate!r}"
            backend = RenamedSimulatedBackend(one_node_spec(simulate, where), node)
            return _NodeInventory(source, tuple(backend.devices()), simulated=backend)
    except InvalidRequest as exc:
        return _NodeInventory(source, (), problem=exc.message)
    return None


class KubeNodeBackend:
    """Devices of the Kubernetes nodes that declare some (thread-safe); fed by the node informer."""

    name = "kubernetes"

    def __init__(self) -> None:
        self._nodes: dict[str, _NodeInventory] = {}
        self._lock = threading.Lock()

    def sync(self, nodes: Sequence[dict[str, Any]]) -> bool:
        """Replace the whole table from a node list; True when the devices changed."""
        with self._lock:
            before = self._devices_locked()
            table: dict[str, _NodeInventory] = {}
            for node in nodes:
                name = str((node.get("metadata") or {}).get("name", ""))
                found = self._inventory(name, node)
                if found is not None:
                    table[name] = found
            self._nodes = table
            return self._devices_locked() != before

    def update(self, node: dict[str, Any]) -> bool:
        """A node was added or changed; True when the devices changed."""
        name = str((node.get("metadata") or {}).get("name", ""))
        with self._lock:
            before = self._nodes.get(name)
            found = self._inventory(name, node)
            if found is None:
                self._nodes.pop(name, None)
            else:
                self._nodes[name] = found
            return (before.devices if before else ()) != (found.devices if found else ())

    def remove(self, name: str) -> bool:
        """A node was deleted; True when it had devices."""
        with self._lock:
            gone = self._nodes.pop(name, None)
            return bool(gone and gone.devices)

    def _inventory(self, name: str, node: dict[str, Any]) -> _NodeInventory | None:
        notes = (node.get("metadata") or {}).get("annotations") or {}
        known = self._nodes.get(name)
        if known is not None and notes.get(known.source[0]) == known.source[1]:
            return known  # unchanged: keep the same simulated backend (its telemetry state)
        found = _node_inventory(name, notes)
        if found is not None and found.problem:
            log.warning("%s; the node contributes no device", found.problem)
        return found

    def problems(self) -> dict[str, str]:
        """Nodes whose annotation could not be read, with the reason."""
        with self._lock:
            return {name: inv.problem for name, inv in self._nodes.items() if inv.problem}

    # --------------------------------------------------------- DeviceBackend
    def devices(self) -> list[Device]:
        with self._lock:
            return self._devices_locked()

    def _devices_locked(self) -> list[Device]:
        found = [device for inventory in self._nodes.values() for device in inventory.devices]
        return sorted(found, key=lambda d: (d.node, d.index))

    def telemetry(self) -> list[DeviceTelemetry]:
        """Samples of simulated nodes; a real node's utilization is not reported through Kubernetes."""
        with self._lock:
            simulated = [inv.simulated for inv in self._nodes.values() if inv.simulated is not None]
        return [sample for backend in simulated for sample in backend.telemetry()]

    def note_allocations(self, allocations: Mapping[str, tuple[int, int]]) -> None:
        with self._lock:
            simulated = [inv.simulated for inv in self._nodes.values() if inv.simulated is not None]
        for backend in simulated:
            backend.note_allocations(allocations)

    def close(self) -> None:
        """Nothing to release."""
