"""The test VM host: libvirt's test driver on `data/host.xml`, and the sysfs tree that goes with it.

`make_host(tmp)` copies the host XML (tests may edit it: libvirt's test driver keeps no state
between connections, so a "restart" is a new XML file) and writes a host root with what a real
host's sysfs and /proc/driver/nvidia would say: the driver of every GPU function, NVIDIA's VF vGPU
types, and the device minor of each nvidia-bound GPU (`dev/nvidiaN` is a plain file here, so a test
process can hold it open like a CUDA process holds the real one).
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gpupool.devices.libvirt_config import METADATA_NAMESPACE

DATA = Path(__file__).parent / "data"
TEST_NAMESPACE = "http://libvirt.org/schemas/domain/test/1.0"
HOST_XML = DATA / "host.xml"

ET.register_namespace("test", TEST_NAMESPACE)
ET.register_namespace("gpupool", METADATA_NAMESPACE)

MDEV_GPU = "0000:41:00.0"
SRIOV_GPU = "0000:81:00.0"
VFIO_GPU = "0000:c1:00.0"
VF_TYPES = [("557", "A100-4C"), ("558", "A100-5C"), ("559", "A100-8C"), ("560", "A100-10C"),
            ("561", "A100-20C"), ("562", "A100-40C")]  # fmt: skip
DRIVERS = {MDEV_GPU: "nvidia", SRIOV_GPU: "nvidia", VFIO_GPU: "vfio-pci"}
MINORS = {MDEV_GPU: 0, SRIOV_GPU: 1}


def vf_addresses() -> list[str]:
    """The 16 VFs of the SR-IOV GPU, 0000:81:00.4 .. 0000:81:02.3."""
    return [f"0000:81:{(4 + i) // 8:02x}.{(4 + i) % 8:x}" for i in range(16)]


@dataclass(frozen=True)
class VmTestHost:
    xml: Path
    root: Path

    @property
    def uri(self) -> str:
        return f"test://{self.xml}"

    def dev_node(self, address: str) -> Path:
        return self.root / "dev" / f"nvidia{MINORS[address]}"

    def vf_type(self, address: str) -> str:
        return (self.root / "sys/bus/pci/devices" / address / "nvidia/current_vgpu_type").read_text().strip()

    def add_domain(
        self,
        name: str,
        owner: str | None = None,
        running: bool = False,
        hostdevs: Sequence[str] = (),
        uuid: str | None = None,
    ) -> None:
        """Add a test-driver domain to the host XML (seen by the next connection)."""
        tree = ET.parse(self.xml)
        tree.getroot().append(domain_element(name, owner, running, hostdevs, uuid))
        tree.write(self.xml, encoding="unicode")

    def remove_domain(self, name: str) -> None:
        tree = ET.parse(self.xml)
        node = tree.getroot()
        for old in node.findall("domain"):
            if old.findtext("name") == name:
                node.remove(old)
        tree.write(self.xml, encoding="unicode")


def domain_element(
    name: str, owner: str | None, running: bool, hostdevs: Sequence[str] = (), uuid: str | None = None
) -> ET.Element:
    metadata = (
        f"<metadata><gpupool:owner xmlns:gpupool='{METADATA_NAMESPACE}' tenant='{owner}'/></metadata>"
        if owner
        else ""
    )
    state = "" if running else f"<test:runstate xmlns:test='{TEST_NAMESPACE}'>5</test:runstate>"
    uuid_element = f"<uuid>{uuid}</uuid>" if uuid else ""
    return ET.fromstring(
        f"<domain type='test'><name>{name}</name>{uuid_element}{metadata}"
        "<memory unit='GiB'>4</memory><vcpu>2</vcpu><os><type>hvm</type></os>"
        f"<devices>{''.join(hostdevs)}</devices>{state}</domain>"
    )


def _link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


def make_host(tmp: Path, xml_text: str | None = None) -> VmTestHost:
    """A private copy of the test host under `tmp`."""
    tmp.mkdir(parents=True, exist_ok=True)
    xml = tmp / "host.xml"
    xml.write_text(xml_text if xml_text is not None else HOST_XML.read_text())
    root = tmp / "hostroot"
    pci = root / "sys/bus/pci/devices"
    for address, driver in DRIVERS.items():
        _link(pci / address / "driver", f"../../../../bus/pci/drivers/{driver}")
    for address in vf_addresses():
        _link(pci / address / "driver", "../../../../bus/pci/drivers/nvidia")
        nvidia = pci / address / "nvidia"
        nvidia.mkdir(parents=True)
        lines = ["ID    : vGPU Name", *(f"{type_id:<5} : NVIDIA {name}" for type_id, name in VF_TYPES)]
        (nvidia / "creatable_vgpu_types").write_text("\n".join(lines) + "\n")
        (nvidia / "current_vgpu_type").write_text("0\n")
    for address, minor in MINORS.items():
        info = root / "proc/driver/nvidia/gpus" / address / "information"
        info.parent.mkdir(parents=True)
        info.write_text(f"Model: \t\t NVIDIA A100-PCIE-40GB\nIRQ:   \t\t 150\nDevice Minor: \t {minor}\n")
        (root / "dev").mkdir(exist_ok=True)
        (root / "dev" / f"nvidia{minor}").write_text("")
    return VmTestHost(xml=xml, root=root)
