"""The contract between the pool service and the scheduler: a `Placer` turns a claim spec and the
current load of every device into bindings (all GPUs of the claim, or none) or a human reason."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from gpupool.model import Binding, ClaimSpec, Device


@dataclass(frozen=True)
class DeviceTraits:
    """What a VM host knows of a device beyond its capacity (the `vms` adapter sets it; None elsewhere).

    The VM rules (`plugins/vgpu_profile`, `passthrough`, `host_busy`) read it.
    """

    profiles: Mapping[str, int] = field(default_factory=dict)  # vGPU profile -> instances creatable now
    hosted_profile: str = ""  # the profile of the vGPUs on it now ("" none)
    passthrough_capable: bool = False  # may go whole to a VM (own IOMMU group)
    passed_through_to: str = ""  # the domain that holds it whole now, recorded by gpupool or not
    vm_only: bool = False  # bound to vfio-pci, or held by a VM: no host workloads
    host_claims: bool = False  # host (non-VM) claims are bound to it
    host_pids: tuple[int, ...] = ()  # host processes holding it open (looked up for passthrough)
    label: str = ""  # how reasons name it (its PCI address)


@dataclass(frozen=True)
class DeviceLoad:
    """A device and what is already bound to it, as the pool sees it at decision time."""

    device: Device
    allocated_memory_bytes: int = 0
    allocated_compute_percent: int = 0
    utilization_percent: float = 0.0
    traits: DeviceTraits | None = None

    @property
    def free_memory_bytes(self) -> int:
        return self.device.memory_total_bytes - self.allocated_memory_bytes

    @property
    def free_compute_percent(self) -> int:
        return 100 - self.allocated_compute_percent


@dataclass(frozen=True)
class PlacementResult:
    """Bindings for every GPU of the claim, or no bindings and the reason why not."""

    bindings: tuple[Binding, ...] = ()
    reason: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.bindings)


@dataclass(frozen=True)
class NodeVerdict:
    """Could a claim bind on one node now, and how much the policy likes that node.

    `score` is the policy's own score (higher is better), comparable only within one `assess`
    call; `best` marks the node `place` would choose among the nodes assessed.
    """

    node: str
    fits: bool
    reason: str = ""  # why it does not fit, when it does not
    score: float = 0.0
    best: bool = False


class Placer(Protocol):
    """What the pool needs from a scheduling policy."""

    name: str

    def place(self, spec: ClaimSpec, cluster: Sequence[DeviceLoad], learn: bool = True) -> PlacementResult:
        """Bindings for `spec` on `cluster`, or the reason it fits nowhere. `learn=False` for a
        retry or a what-if, so online policies count each claim's arrival once."""
        ...

    def assess(self, spec: ClaimSpec, cluster: Sequence[DeviceLoad]) -> list[NodeVerdict]:
        """One verdict per node of `cluster` (by name), without learning or changing anything:
        whether `spec` fits there now (else why not) and the policy's score of the node.
        `place` on the devices of one node gives that node's bindings."""
        ...


def with_bindings(
    loads: Sequence[DeviceLoad], bindings: Sequence[Binding], sign: int = 1
) -> list[DeviceLoad]:
    """The loads after adding (sign=1) or removing (sign=-1) bindings, without re-reading the store."""
    added: dict[str, tuple[int, int]] = {}
    for binding in bindings:
        memory, compute = added.get(binding.device_uuid, (0, 0))
        added[binding.device_uuid] = (
            memory + sign * binding.memory_bytes,
            compute + sign * binding.compute_percent,
        )
    return [
        replace(
            load,
            allocated_memory_bytes=load.allocated_memory_bytes + added[load.device.uuid][0],
            allocated_compute_percent=load.allocated_compute_percent + added[load.device.uuid][1],
        )
        if load.device.uuid in added
        else load
        for load in loads
    ]


def loads_on(loads: Sequence[DeviceLoad], nodes: Collection[str]) -> list[DeviceLoad]:
    """The loads of the devices on `nodes` only (placing on them restricts a claim to those nodes)."""
    return [load for load in loads if load.device.node in nodes]
