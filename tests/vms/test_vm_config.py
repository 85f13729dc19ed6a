"""libvirt XML <-> config objects, node-device records, PCI addresses and vGPU profile names."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gpupool.devices.libvirt_config import (
    DomainConfig,
    HostdevMdev,
    HostdevPCI,
    hostdev_elements,
    mdev_device_xml,
    parse_hostdev,
    with_hostdev,
    without_hostdev,
)
from gpupool.devices.nodedev_xml import parse_mdev, parse_pci_function
from gpupool.errors import InvalidRequest
from gpupool.model import GiB
from gpupool.model.vm import PciAddress, profile_framebuffer_bytes, profile_name

RECIPE_HOST = Path(__file__).resolve().parents[3] / "shared" / "recipes" / "libvirt" / "test-host.xml"
GPU = PciAddress(0, 0x41, 0, 0)
MDEV_UUID = "c2177883-f1bb-47f0-914d-32a22e3a8804"

DOMAIN = f"""<domain type='kvm'>
  <name>web-1</name><uuid>3A27FE46-A40D-4767-9EAF-5B0021CBD208</uuid>
  <metadata><gpupool:owner xmlns:gpupool='https://gpupool.io/xmlns/vm/1' tenant='team-a'/></metadata>
  <devices>
    <disk type='file' device='disk'><source file='/var/lib/x.qcow2'/><target dev='vda'/></disk>
    <hostdev mode='subsystem' type='pci' managed='yes'>
      <source><address domain='0x0000' bus='0x41' slot='0x00' function='0x0'/></source>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </hostdev>
    <hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'>
      <source><address uuid='{MDEV_UUID.upper()}'/></source>
    </hostdev>
    <hostdev mode='subsystem' type='usb'>
      <source><vendor id='0x1234'/><product id='0xbeef'/></source>
    </hostdev>
  </devices>
</domain>"""


@pytest.mark.parametrize(
    "hostdev",
    [HostdevPCI(GPU), HostdevPCI(PciAddress(0, 0x81, 1, 7), managed=False), HostdevMdev(MDEV_UUID)],
    ids=["pci-managed", "vf-unmanaged", "mdev"],
)
def test_hostdev_builds_xml_that_parses_back_to_the_same_object(hostdev: HostdevPCI | HostdevMdev) -> None:
    element = ET.fromstring(hostdev.to_xml())
    assert element.tag == "hostdev" and element.get("mode") == "subsystem"
    assert parse_hostdev(element) == hostdev


def test_pci_hostdev_xml_has_the_attributes_libvirt_expects() -> None:
    element = HostdevPCI(GPU).to_element()
    assert (element.get("type"), element.get("managed")) == ("pci", "yes")
    address = element.find("source/address")
    assert address is not None
    assert dict(address.attrib) == {"domain": "0x0000", "bus": "0x41", "slot": "0x00", "function": "0x0"}


def test_mdev_hostdev_xml_names_the_uuid_and_vfio_pci_model() -> None:
    element = HostdevMdev(MDEV_UUID).to_element()
    assert (element.get("type"), element.get("model"), element.get("managed")) == ("mdev", "vfio-pci", "no")
    assert element.find("source/address").get("uuid") == MDEV_UUID  # type: ignore[union-attr]


def test_mdev_hostdev_refuses_a_non_uuid() -> None:
    with pytest.raises(InvalidRequest):
        HostdevMdev("not-a-uuid")


def test_domain_config_reads_owner_uuid_and_gpu_hostdevs_only() -> None:
    config = DomainConfig.parse(DOMAIN)
    assert config.name == "web-1"
    assert config.uuid == "3a27fe46-a40d-4767-9eaf-5b0021cbd208"
    assert config.owner == "team-a"
    assert config.hostdevs == (HostdevPCI(GPU, managed=True), HostdevMdev(MDEV_UUID))  # USB skipped
    assert config.holds(HostdevPCI(GPU, managed=False))  # the same source is the same device


def test_with_and_without_hostdev_edit_only_the_device_list() -> None:
    added = with_hostdev(DOMAIN, HostdevPCI(PciAddress(0, 0xC1, 0, 0)))
    assert DomainConfig.parse(added).hostdevs[-1] == HostdevPCI(PciAddress(0, 0xC1, 0, 0))
    removed = without_hostdev(added, HostdevMdev(MDEV_UUID))
    parsed = DomainConfig.parse(removed)
    assert HostdevMdev(MDEV_UUID) not in parsed.hostdevs
    assert parsed.owner == "team-a" and ET.fromstring(removed).find("devices/disk") is not None
    assert len(hostdev_elements(removed)) == 3  # two PCI + the USB one


def test_mdev_node_device_xml() -> None:
    root = ET.fromstring(mdev_device_xml("pci_0000_41_00_0", "nvidia-468", MDEV_UUID))
    assert root.findtext("parent") == "pci_0000_41_00_0"
    assert root.find("capability[@type='mdev']/type").get("id") == "nvidia-468"  # type: ignore[union-attr]
    assert root.findtext("capability/uuid") == MDEV_UUID


@pytest.mark.skipif(not RECIPE_HOST.exists(), reason=f"no {RECIPE_HOST}")
def test_node_device_of_the_recipe_host_parses() -> None:
    root = ET.parse(RECIPE_HOST).getroot()
    function = parse_pci_function(ET.tostring(root.find("device"), encoding="unicode"))  # type: ignore[arg-type]
    assert function is not None and function.is_nvidia_gpu
    assert str(function.address) == "0000:65:00.0" and function.product_id == 0x20B5
    assert function.driver == "nvidia" and function.max_virtual_functions == 16
    assert [(t.type_id, t.name, t.available_instances) for t in function.mdev_types] == [
        ("nvidia-471", "GRID A100D-10C", 8)
    ]


def test_mdev_node_device_without_uuid_element_takes_it_from_the_name() -> None:
    xml = f"<device><name>mdev_{MDEV_UUID.replace('-', '_')}</name><parent>pci_0000_41_00_0</parent>"
    xml += "<capability type='mdev'><type id='nvidia-468'/><iommuGroup number='9'/></capability></device>"
    found = parse_mdev(xml)
    assert found is not None and (found.uuid, found.type_id, found.parent_name) == (
        MDEV_UUID,
        "nvidia-468",
        "pci_0000_41_00_0",
    )


def test_non_pci_node_device_is_not_a_function() -> None:
    assert parse_pci_function("<device><name>computer</name><capability type='system'/></device>") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0000:41:00.0", GPU), ("41:00.0", GPU), ("0000:81:02.3", PciAddress(0, 0x81, 2, 3))],
)
def test_pci_address_parses_and_prints(text: str, expected: PciAddress) -> None:
    assert PciAddress.parse(text) == expected
    assert PciAddress.parse(str(expected)) == expected
    assert expected.nodedev_name == "pci_" + str(expected).replace(":", "_").replace(".", "_")


@pytest.mark.parametrize("text", ["", "41:00", "zz:00.0", "0000:41:00.8", "0000:41:20.0", "41.00.0"])
def test_pci_address_refuses_bad_text(text: str) -> None:
    with pytest.raises(InvalidRequest, match="PCI"):
        PciAddress.parse(text)


@pytest.mark.parametrize(
    ("raw", "name", "framebuffer"),
    [
        ("GRID A100-4C", "A100-4C", 4 * GiB),
        ("NVIDIA A100-40C", "A100-40C", 40 * GiB),
        ("GRID A100D-10C", "A100D-10C", 10 * GiB),
        ("GRID A100-1-5C", "A100-1-5C", 5 * GiB),
        ("NVIDIA L40S-24Q", "L40S-24Q", 24 * GiB),
        ("something else", "something else", None),
    ],
)
def test_profile_names_and_framebuffer(raw: str, name: str, framebuffer: int | None) -> None:
    assert profile_name(raw) == name
    assert profile_framebuffer_bytes(raw) == framebuffer
