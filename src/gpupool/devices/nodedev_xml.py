"""libvirt node-device XML -> small frozen records (PCI functions and mdevs), and nothing else.

Only what the VM inventory needs is read: address, class, vendor/product, driver, IOMMU group,
NUMA node, SR-IOV links and mdev types. The XML comes from libvirt (trusted), never from tenants.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from gpupool.errors import DeviceBackendError
from gpupool.model.vm import PciAddress

NVIDIA_VENDOR_ID = 0x10DE
DISPLAY_CLASS = 0x03  # PCI base class "display controller" (VGA 0x0300, 3D 0x0302)


@dataclass(frozen=True)
class MdevType:
    """One `mdev_types` entry of a PCI function."""

    type_id: str
    name: str
    available_instances: int


@dataclass(frozen=True)
class PciFunction:
    """One PCI function as libvirt's node-device XML describes it."""

    name: str
    address: PciAddress
    class_code: int
    vendor_id: int
    product_id: int
    product: str
    driver: str | None  # None: libvirt did not say (its test driver drops <driver>)
    iommu_group: int | None
    numa_node: int | None
    mdev_types: tuple[MdevType, ...] = ()
    virtual_functions: tuple[PciAddress, ...] = ()
    max_virtual_functions: int = 0
    physical_function: PciAddress | None = None

    @property
    def is_nvidia_gpu(self) -> bool:
        return self.vendor_id == NVIDIA_VENDOR_ID and self.class_code >> 16 == DISPLAY_CLASS


@dataclass(frozen=True)
class MdevDevice:
    """A mediated device node (`mdev_<uuid>`) and its parent function's node-device name."""

    name: str
    uuid: str
    type_id: str
    parent_name: str


def _int(text: str | None, default: int | None = None) -> int | None:
    if text is None or not text.strip():
        return default
    return int(text.strip(), 0)


def _address(element: ET.Element) -> PciAddress:
    return PciAddress(
        int(element.get("domain", "0"), 0),
        int(element.get("bus", "0"), 0),
        int(element.get("slot", "0"), 0),
        int(element.get("function", "0"), 0),
    )


def _root(xml: str) -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise DeviceBackendError(f"libvirt returned node-device XML gpupool cannot read: {exc}") from exc


def parse_pci_function(xml: str) -> PciFunction | None:
    """The PCI function a node-device XML describes; None for any other kind of device."""
    root = _root(xml)
    cap = root.find("capability[@type='pci']")
    if cap is None:
        return None
    name = root.findtext("name", "")
    address = PciAddress(
        _int(cap.findtext("domain"), 0) or 0,
        _int(cap.findtext("bus"), 0) or 0,
        _int(cap.findtext("slot"), 0) or 0,
        _int(cap.findtext("function"), 0) or 0,
    )
    product = cap.find("product")
    vendor = cap.find("vendor")
    iommu = cap.find("iommuGroup")
    numa = cap.find("numa")
    mdev_types = tuple(
        MdevType(
            type_id=entry.get("id", ""),
            name=entry.findtext("name", "") or entry.get("id", ""),
            available_instances=_int(entry.findtext("availableInstances"), 0) or 0,
        )
        for entry in cap.findall("capability[@type='mdev_types']/type")
    )
    vfs_cap = cap.find("capability[@type='virt_functions']")
    pf = cap.find("capability[@type='phys_function']/address")
    return PciFunction(
        name=name,
        address=address,
        class_code=_int(cap.findtext("class"), 0) or 0,
        vendor_id=_int(vendor.get("id") if vendor is not None else None, 0) or 0,
        product_id=_int(product.get("id") if product is not None else None, 0) or 0,
        product=(product.text or "").strip() if product is not None else "",
        driver=root.findtext("driver/name"),
        iommu_group=_int(iommu.get("number")) if iommu is not None else None,
        numa_node=_numa(numa),
        mdev_types=mdev_types,
        virtual_functions=tuple(
            _address(a) for a in cap.findall("capability[@type='virt_functions']/address")
        ),
        max_virtual_functions=_int(vfs_cap.get("maxCount") if vfs_cap is not None else None, 0) or 0,
        physical_function=_address(pf) if pf is not None else None,
    )


def _numa(element: ET.Element | None) -> int | None:
    node = _int(element.get("node")) if element is not None else None
    return None if node is None or node < 0 else node  # libvirt says -1 on single-node hosts


def parse_mdev(xml: str) -> MdevDevice | None:
    """The mediated device a node-device XML describes; None for any other kind of device."""
    root = _root(xml)
    cap = root.find("capability[@type='mdev']")
    if cap is None:
        return None
    type_element = cap.find("type")
    uuid = (cap.findtext("uuid") or "").strip()
    if not uuid:  # older libvirt: only the name `mdev_<uuid with underscores>` carries it
        uuid = root.findtext("name", "").removeprefix("mdev_").replace("_", "-")
    return MdevDevice(
        name=root.findtext("name", ""),
        uuid=uuid.lower(),
        type_id=type_element.get("id", "") if type_element is not None else "",
        parent_name=root.findtext("parent", ""),
    )
