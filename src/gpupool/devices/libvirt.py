"""The `libvirt` device backend: a VM host's NVIDIA GPUs from libvirt's node devices.

Each NVIDIA display-class PCI function that is not a virtual function is one pool device. Its id is
a UUID derived from the host name and PCI address (stable when the GPU moves between the nvidia
and vfio-pci drivers, which NVML's UUID is not: a GPU on vfio-pci is invisible to NVML). `gpus()`
gives the VM view: driver, IOMMU group, NUMA node, vGPU profiles (mdev types; VF vGPU types from
NVIDIA's sysfs files) with available instances, SR-IOV VFs and the mdevs that exist now.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace

from gpupool.devices.host_files import HostFiles
from gpupool.devices.libvirt_host import LibvirtHost
from gpupool.devices.nodedev_xml import MdevDevice, PciFunction
from gpupool.devices.pci_ids import model_for_pci
from gpupool.model import Device, DeviceTelemetry
from gpupool.model.vm import (
    HostdevMode,
    Mdev,
    PciAddress,
    VgpuProfile,
    VirtualFunction,
    VmGpu,
    profile_framebuffer_bytes,
    profile_name,
)

UUID_NAMESPACE = uuid.UUID("0b5a3c0e-6f4e-5d2a-9c61-67707570766d")
"""Namespace of libvirt device ids (uuid5 of `host/pci address`); changing it renames every device."""


def vm_device_uuid(node: str, address: PciAddress) -> str:
    return f"GPU-{uuid.uuid5(UUID_NAMESPACE, f'{node}/{address}')}"


@dataclass
class _Profiles:
    """Profiles of one GPU as they are gathered from its functions."""

    memory_total_bytes: int
    found: dict[tuple[str, HostdevMode], VgpuProfile]

    def add(
        self, name: str, type_id: str, mechanism: HostdevMode, available: int, parent: PciAddress
    ) -> None:
        framebuffer = profile_framebuffer_bytes(name) or 0
        key = (name, mechanism)
        if key not in self.found:
            most = self.memory_total_bytes // framebuffer if framebuffer else 0
            self.found[key] = VgpuProfile(name, type_id, mechanism, framebuffer, most, 0, ())
        entry = self.found[key]
        parents = entry.parents + ((parent,) if available > 0 else ())
        self.found[key] = VgpuProfile(
            entry.name,
            entry.type_id,
            mechanism,
            entry.framebuffer_bytes,
            entry.max_instances,
            # No more than fit in the GPU's memory, however many VFs are free.
            min(entry.available_instances + available, entry.max_instances or 1 << 30),
            parents,
        )


class LibvirtBackend:
    """GPUs of one libvirt host; `host` is shared with the `vms` adapter (one connection)."""

    name = "libvirt"

    def __init__(self, host: LibvirtHost, files: HostFiles | None = None) -> None:
        self.host = host
        self.files = files or HostFiles()
        self.node = host.hostname

    def devices(self) -> list[Device]:
        return [
            Device(
                uuid=gpu.device_uuid,
                node=gpu.node,
                index=gpu.index,
                model=gpu.model,
                memory_total_bytes=gpu.memory_total_bytes,
            )
            for gpu in self.gpus(with_processes=False)
        ]

    def gpus(self, with_processes: bool = True) -> list[VmGpu]:
        """The VM view of every GPU, read fresh (available instances change with every mdev).

        `with_processes`: also find host processes holding each nvidia-bound GPU open (scans /proc).
        """
        functions = self.host.pci_functions()
        by_address = {f.address: f for f in functions}
        mdevs = self.host.mdevs()
        physical = sorted(
            (f for f in functions if f.is_nvidia_gpu and f.physical_function is None), key=lambda f: f.address
        )
        gpus = [self._gpu(index, f, by_address, mdevs) for index, f in enumerate(physical)]
        if with_processes:
            gpus = self._with_processes(gpus)
        return gpus

    def _gpu(
        self,
        index: int,
        function: PciFunction,
        by_address: Mapping[PciAddress, PciFunction],
        mdevs: list[MdevDevice],
    ) -> VmGpu:
        model, known = model_for_pci(function.product_id, function.product)
        vf_functions = [by_address[a] for a in function.virtual_functions if a in by_address]
        framebuffers = [
            profile_framebuffer_bytes(t.name) or 0 for f in (function, *vf_functions) for t in f.mdev_types
        ]
        memory = known.memory_total_bytes if known else max(framebuffers, default=0)
        profiles = _Profiles(memory, {})
        for f in (function, *vf_functions):
            for entry in f.mdev_types:
                name = profile_name(entry.name)
                profiles.add(name, entry.type_id, HostdevMode.MDEV, entry.available_instances, f.address)
        vfs = []
        for f in vf_functions:
            vf = VirtualFunction(
                address=f.address,
                driver=self._driver(f),
                iommu_group=f.iommu_group,
                creatable_types=self.files.vf_vgpu_types(f.address),
                current_type=self.files.vf_current_type(f.address),
            )
            vfs.append(vf)
            for type_id, name in vf.creatable_types:
                free = 1 if vf.current_type is None else 0
                profiles.add(name, type_id, HostdevMode.VF, free, f.address)
        names = {f.name: f.address for f in (function, *vf_functions)}
        return VmGpu(
            device_uuid=vm_device_uuid(self.node, function.address),
            node=self.node,
            index=index,
            address=function.address,
            model=model,
            product=function.product,
            memory_total_bytes=memory,
            driver=self._driver(function),
            iommu_group=function.iommu_group,
            numa_node=function.numa_node,
            profiles=tuple(sorted(profiles.found.values(), key=lambda p: (p.framebuffer_bytes, p.name))),
            virtual_functions=tuple(vfs),
            max_virtual_functions=function.max_virtual_functions,
            mdevs=tuple(
                Mdev(m.uuid, m.type_id, names[m.parent_name]) for m in mdevs if m.parent_name in names
            ),
        )

    def _driver(self, function: PciFunction) -> str:
        # libvirt's XML names the driver; its test driver drops it, so sysfs is asked then.
        return function.driver if function.driver is not None else self.files.driver(function.address)

    def _with_processes(self, gpus: list[VmGpu]) -> list[VmGpu]:
        nodes = {
            gpu.device_uuid: self.files.device_node(gpu.address) for gpu in gpus if gpu.driver == "nvidia"
        }
        holders = self.files.processes_holding(path for path in nodes.values() if path is not None)
        result = []
        for gpu in gpus:
            path = nodes.get(gpu.device_uuid)
            pids = holders.get(path, ()) if path is not None else ()
            result.append(replace(gpu, host_pids=pids) if pids else gpu)
        return result

    def telemetry(self) -> list[DeviceTelemetry]:
        """libvirt reports no utilization; the pool shows what is bound instead."""
        return []

    def note_allocations(self, allocations: Mapping[str, tuple[int, int]]) -> None:
        """Real devices ignore this (see `DeviceBackend`)."""

    def close(self) -> None:
        self.host.close()
