"""What a VM host offers and what a VM holds: PCI addresses, vGPU profiles, GPUs as libvirt sees them.

Frozen values shared by the libvirt device backend, the `vms` adapter, the API and the CLI. Sizes in
bytes; a PCI address prints as `0000:41:00.0`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from gpupool.errors import InvalidRequest
from gpupool.model.units import GiB

# Labels a VM claim carries. The scheduler reads the first three (see `scheduler.live`); the
# domain label is for people (`gpupool ps`, the dashboard).
VM_DOMAIN_LABEL = "vm.gpupool.io/domain"
VGPU_PROFILE_LABEL = "vm.gpupool.io/vgpu-profile"
PASSTHROUGH_LABEL = "vm.gpupool.io/passthrough"
DEVICES_LABEL = "vm.gpupool.io/devices"  # comma-separated device UUIDs the claim may use

_PCI_RE = re.compile(r"^\s*(?:([0-9a-fA-F]{1,4}):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})\.([0-7])\s*$")
_PROFILE_PREFIXES = ("GRID ", "NVIDIA ")
# NVIDIA names a vGPU type BOARD-[GPU_INSTANCES-]FRAMEBUFFER_GB SERIES, e.g. A100-4C, A100-1-5C,
# A100D-10C, L40S-24Q: the number before the series letter is the framebuffer in GiB.
_PROFILE_RE = re.compile(r"^(?P<board>.+?)-(?:(?P<instances>\d+)-)?(?P<gb>\d+)(?P<series>[A-Z])$")


@dataclass(frozen=True, order=True)
class PciAddress:
    """domain:bus:slot.function of a PCI function."""

    domain: int
    bus: int
    slot: int
    function: int

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    @property
    def nodedev_name(self) -> str:
        """libvirt's node-device name, `pci_0000_41_00_0`."""
        return f"pci_{self.domain:04x}_{self.bus:02x}_{self.slot:02x}_{self.function:x}"

    @classmethod
    def parse(cls, text: str, field: str = "address") -> PciAddress:
        """`0000:41:00.0` or `41:00.0`; InvalidRequest otherwise."""
        match = _PCI_RE.match(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidRequest(f"{field}: {text!r} is not a PCI address like 0000:41:00.0")
        domain, bus, slot, function = match.groups()
        if int(slot, 16) > 0x1F:
            raise InvalidRequest(f"{field}: PCI slot {slot} is above 1f in {text!r}")
        return cls(int(domain or "0", 16), int(bus, 16), int(slot, 16), int(function))


class HostdevMode(enum.StrEnum):
    """How a VM gets its share of a GPU."""

    PASSTHROUGH = "passthrough"  # the whole physical GPU (VFIO), `<hostdev type='pci' managed='yes'>`
    MDEV = "mdev"  # a mediated vGPU created on the GPU (or one of its VFs), `<hostdev type='mdev'>`
    VF = "vf"  # an SR-IOV virtual function given a vGPU type through sysfs, `<hostdev type='pci'>`


def profile_name(raw: str) -> str:
    """The short profile name people use: `GRID A100-4C` and `NVIDIA A100-4C` -> `A100-4C`."""
    name = raw.strip()
    for prefix in _PROFILE_PREFIXES:
        if name.upper().startswith(prefix):
            name = name[len(prefix) :].strip()
    return name


def profile_framebuffer_bytes(name: str) -> int | None:
    """Framebuffer of a vGPU profile from its NVIDIA name (`A100-4C` -> 4 GiB); None if unknown."""
    match = _PROFILE_RE.match(profile_name(name))
    return int(match.group("gb")) * GiB if match else None


@dataclass(frozen=True)
class VgpuProfile:
    """One vGPU profile a GPU offers, by one mechanism (mdev type or VF vGPU type).

    `max_instances` is how many fit on an empty GPU; `available_instances` how many the host can
    still create now (libvirt's `availableInstances`, or free VFs that offer the type).
    `parents` are the functions an instance can be created on: the GPU itself or its VFs.
    """

    name: str  # short name, `A100-4C`
    type_id: str  # `nvidia-468` (mdev type) or `557` (VF vGPU type id)
    mechanism: HostdevMode
    framebuffer_bytes: int
    max_instances: int
    available_instances: int
    parents: tuple[PciAddress, ...] = ()


@dataclass(frozen=True)
class VirtualFunction:
    """An SR-IOV virtual function of a GPU, with the vGPU types it can take (NVIDIA's sysfs)."""

    address: PciAddress
    driver: str
    iommu_group: int | None
    creatable_types: tuple[tuple[str, str], ...] = ()  # (type id, short profile name)
    current_type: str | None = None  # the vGPU type id set on it now


@dataclass(frozen=True)
class Mdev:
    """A mediated device on the host: its UUID, type and the function it lives on."""

    uuid: str
    type_id: str
    parent: PciAddress


@dataclass(frozen=True)
class VmGpu:
    """One physical NVIDIA GPU of a VM host as libvirt sees it; `device_uuid` is its pool id."""

    device_uuid: str
    node: str
    index: int
    address: PciAddress
    model: str
    product: str
    memory_total_bytes: int
    driver: str  # nvidia, vfio-pci, or "" when unbound
    iommu_group: int | None
    numa_node: int | None
    profiles: tuple[VgpuProfile, ...] = ()
    virtual_functions: tuple[VirtualFunction, ...] = ()
    max_virtual_functions: int = 0
    mdevs: tuple[Mdev, ...] = ()  # every mdev on the GPU or its VFs, whoever created it
    host_pids: tuple[int, ...] = field(default=(), compare=False)  # host processes holding it open

    @property
    def passthrough_capable(self) -> bool:
        """A whole GPU can go to a VM when the IOMMU puts it in a group of its own (VFIO)."""
        return self.iommu_group is not None

    def profile(self, name: str) -> VgpuProfile | None:
        wanted = profile_name(name).lower()
        return next(
            (p for p in self.profiles if p.name.lower() == wanted or p.type_id.lower() == wanted), None
        )

    def functions(self) -> tuple[PciAddress, ...]:
        """The GPU and its virtual functions."""
        return (self.address, *(vf.address for vf in self.virtual_functions))


class HostdevState(enum.StrEnum):
    ATTACHING = "attaching"  # recorded, libvirt being changed: a restart finishes or undoes it
    ATTACHED = "attached"
    DETACHING = "detaching"  # being taken off the domain: a restart finishes it


@dataclass(frozen=True)
class VmHostdevRecord:
    """One host device gpupool attached to a domain for one binding of a VM claim."""

    claim_id: str
    tenant: str
    domain: str
    domain_uuid: str
    device_uuid: str
    mode: HostdevMode
    address: PciAddress  # the GPU (passthrough), its VF (vf), or the mdev's parent function
    state: HostdevState
    profile: str | None = None
    type_id: str | None = None
    mdev_uuid: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
