"""libvirt domain XML as small config objects (after Nova's `virt/libvirt/config.py`).

`HostdevPCI` and `HostdevMdev` build the `<hostdev>` elements gpupool attaches and parse them back
out of a domain's XML, so code and tests compare objects, never strings. `DomainConfig` is the part
of a domain gpupool reads: its name, UUID, owner tenant (gpupool metadata) and hostdevs.
"""

from __future__ import annotations

import uuid as uuid_module
import xml.etree.ElementTree as ET
from dataclasses import dataclass

from gpupool.errors import DeviceBackendError, InvalidRequest
from gpupool.model.vm import PciAddress

METADATA_NAMESPACE = "https://gpupool.io/xmlns/vm/1"
"""Namespace of gpupool's element in a domain's <metadata>: `<gpupool:owner tenant="team-a"/>`."""
METADATA_KEY = "gpupool"


@dataclass(frozen=True)
class HostdevPCI:
    """`<hostdev mode='subsystem' type='pci'>`: a whole GPU (managed: libvirt binds vfio-pci around
    the VM's life) or an SR-IOV VF that keeps NVIDIA's driver (not managed)."""

    address: PciAddress
    managed: bool = True

    def to_element(self) -> ET.Element:
        hostdev = ET.Element(
            "hostdev", {"mode": "subsystem", "type": "pci", "managed": "yes" if self.managed else "no"}
        )
        source = ET.SubElement(hostdev, "source")
        a = self.address
        ET.SubElement(
            source,
            "address",
            {
                "domain": f"0x{a.domain:04x}",
                "bus": f"0x{a.bus:02x}",
                "slot": f"0x{a.slot:02x}",
                "function": f"0x{a.function:x}",
            },
        )
        return hostdev

    def to_xml(self) -> str:
        return ET.tostring(self.to_element(), encoding="unicode")

    @classmethod
    def parse(cls, element: ET.Element) -> HostdevPCI:
        address = element.find("source/address")
        if address is None:
            raise InvalidRequest("a PCI hostdev without <source><address>")
        return cls(
            PciAddress(
                int(address.get("domain", "0"), 0),
                int(address.get("bus", "0"), 0),
                int(address.get("slot", "0"), 0),
                int(address.get("function", "0"), 0),
            ),
            managed=element.get("managed", "no") == "yes",
        )

    @property
    def key(self) -> str:
        return f"pci:{self.address}"


@dataclass(frozen=True)
class HostdevMdev:
    """`<hostdev mode='subsystem' type='mdev' model='vfio-pci'>`: a mediated vGPU by its UUID."""

    uuid: str
    model: str = "vfio-pci"

    def __post_init__(self) -> None:
        try:
            uuid_module.UUID(self.uuid)
        except ValueError:
            raise InvalidRequest(f"mdev uuid {self.uuid!r} is not a UUID") from None

    def to_element(self) -> ET.Element:
        hostdev = ET.Element(
            "hostdev", {"mode": "subsystem", "type": "mdev", "managed": "no", "model": self.model}
        )
        source = ET.SubElement(hostdev, "source")
        ET.SubElement(source, "address", {"uuid": self.uuid})
        return hostdev

    def to_xml(self) -> str:
        return ET.tostring(self.to_element(), encoding="unicode")

    @classmethod
    def parse(cls, element: ET.Element) -> HostdevMdev:
        address = element.find("source/address")
        if address is None or not address.get("uuid"):
            raise InvalidRequest("an mdev hostdev without <source><address uuid=...>")
        return cls(uuid=address.get("uuid", "").lower(), model=element.get("model", "vfio-pci"))

    @property
    def key(self) -> str:
        return f"mdev:{self.uuid}"


Hostdev = HostdevPCI | HostdevMdev


def parse_hostdev(element: ET.Element) -> Hostdev | None:
    """The config object for one `<hostdev>` element; None for kinds gpupool never attaches (USB,
    SCSI, ...)."""
    if element.get("mode", "subsystem") != "subsystem":
        return None
    kind = element.get("type")
    if kind == "pci":
        return HostdevPCI.parse(element)
    if kind == "mdev":
        return HostdevMdev.parse(element)
    return None


@dataclass(frozen=True)
class DomainConfig:
    """What gpupool reads of a domain: who it is, whose it is, which host devices it holds."""

    name: str
    uuid: str
    owner: str | None
    hostdevs: tuple[Hostdev, ...]

    @classmethod
    def parse(cls, xml: str) -> DomainConfig:
        root = parse_xml(xml)
        owner = root.find(f"metadata/{{{METADATA_NAMESPACE}}}owner")
        hostdevs = [parse_hostdev(element) for element in root.findall("devices/hostdev")]
        return cls(
            name=root.findtext("name", ""),
            uuid=root.findtext("uuid", "").lower(),
            owner=owner.get("tenant") if owner is not None else None,
            hostdevs=tuple(h for h in hostdevs if h is not None),
        )

    def holds(self, hostdev: Hostdev) -> bool:
        return any(h.key == hostdev.key for h in self.hostdevs)


def parse_xml(xml: str) -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise DeviceBackendError(f"libvirt returned domain XML gpupool cannot read: {exc}") from exc


def hostdev_elements(xml: str) -> list[str]:
    """Each `<hostdev>` of a domain XML as its own XML text (what the API shows of a domain)."""
    found = []
    for element in parse_xml(xml).findall("devices/hostdev"):
        element.tail = None
        ET.indent(element, space="  ")
        found.append(ET.tostring(element, encoding="unicode"))
    return found


def with_hostdev(domain_xml: str, hostdev: Hostdev) -> str:
    """The domain XML with one more hostdev (for drivers that cannot attach a device)."""
    root = parse_xml(domain_xml)
    devices = root.find("devices")
    if devices is None:
        devices = ET.SubElement(root, "devices")
    devices.append(hostdev.to_element())
    return ET.tostring(root, encoding="unicode")


def without_hostdev(domain_xml: str, hostdev: Hostdev) -> str:
    """The domain XML without the hostdev that matches (same source); unchanged when absent."""
    root = parse_xml(domain_xml)
    devices = root.find("devices")
    if devices is not None:
        for element in devices.findall("hostdev"):
            found = parse_hostdev(element)
            if found is not None and found.key == hostdev.key:
                devices.remove(element)
    return ET.tostring(root, encoding="unicode")


def owner_metadata(tenant: str) -> str:
    """The `<gpupool:owner>` element an admin puts in a domain's metadata to give it to a tenant."""
    return ET.tostring(ET.Element("owner", {"tenant": tenant}), encoding="unicode")


def mdev_device_xml(parent: str, type_id: str, uuid: str) -> str:
    """Node-device XML that defines an mdev of `type_id` on the parent node device."""
    device = ET.Element("device")
    ET.SubElement(device, "parent").text = parent
    cap = ET.SubElement(device, "capability", {"type": "mdev"})
    ET.SubElement(cap, "type", {"id": type_id})
    ET.SubElement(cap, "uuid").text = uuid
    return ET.tostring(device, encoding="unicode")
