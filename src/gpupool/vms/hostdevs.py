"""The host side of one VM binding: pick where its vGPU lives, create it, and take it away again.

A record says what to build: passthrough needs nothing but the hostdev (libvirt's managed hostdev
binds vfio-pci for the VM's life); an mdev vGPU is created on the GPU (or a VF) by UUID; a VF vGPU
gets its type written to NVIDIA's sysfs file and is handed over as a plain PCI hostdev.
"""

from __future__ import annotations

import time
import uuid as uuid_module
from collections.abc import Collection
from dataclasses import replace

from gpupool.devices.host_files import HostFiles
from gpupool.devices.libvirt_config import Hostdev, HostdevMdev, HostdevPCI
from gpupool.devices.libvirt_host import LibvirtHost
from gpupool.errors import Conflict
from gpupool.model import Binding
from gpupool.model.vm import HostdevMode, HostdevState, PciAddress, VgpuProfile, VmGpu, VmHostdevRecord


def hostdev_of(record: VmHostdevRecord) -> Hostdev:
    """The `<hostdev>` a record puts in its domain."""
    if record.mode == HostdevMode.MDEV:
        assert record.mdev_uuid is not None
        return HostdevMdev(record.mdev_uuid)
    # A VF keeps NVIDIA's vendor VFIO driver: libvirt must not rebind it (managed='no').
    return HostdevPCI(record.address, managed=record.mode == HostdevMode.PASSTHROUGH)


def plan_record(
    binding: Binding,
    gpu: VmGpu,
    profile: VgpuProfile | None,
    claim_id: str,
    tenant: str,
    domain: tuple[str, str],
    taken: Collection[PciAddress],
) -> VmHostdevRecord:
    """The record for one binding: which function of the GPU, which mdev UUID. `taken`: VFs other
    records already use (their type may not be written yet)."""
    name, domain_uuid = domain
    now = time.time()
    whole = VmHostdevRecord(
        claim_id=claim_id,
        tenant=tenant,
        domain=name,
        domain_uuid=domain_uuid,
        device_uuid=gpu.device_uuid,
        mode=HostdevMode.PASSTHROUGH,
        address=gpu.address,
        state=HostdevState.ATTACHING,
        created_at=now,
        updated_at=now,
    )
    if profile is None:
        return whole
    offered = gpu.profile(profile.name)
    if offered is None:
        raise Conflict(f"GPU {gpu.address} no longer offers vGPU profile {profile.name}")
    if offered.mechanism == HostdevMode.VF:
        vf = next(
            (
                vf
                for vf in gpu.virtual_functions
                if vf.current_type is None
                and vf.address not in taken
                and any(type_id == offered.type_id for type_id, _ in vf.creatable_types)
            ),
            None,
        )
        if vf is None:
            raise Conflict(f"GPU {gpu.address} has no free virtual function for {profile.name}")
        return replace(
            whole, mode=HostdevMode.VF, address=vf.address, profile=offered.name, type_id=offered.type_id
        )
    parents = [p for p in offered.parents if p not in taken or p == gpu.address]
    if not parents:
        raise Conflict(f"GPU {gpu.address} can create no more {profile.name} vGPUs")
    return replace(
        whole,
        mode=HostdevMode.MDEV,
        address=parents[0],
        profile=offered.name,
        type_id=offered.type_id,
        mdev_uuid=str(uuid_module.uuid4()),
    )


def build(record: VmHostdevRecord, gpu: VmGpu | None, nodes: LibvirtHost, files: HostFiles) -> bool:
    """Create the vGPU a record needs unless it exists; True when something was created."""
    if record.mode == HostdevMode.MDEV:
        assert record.mdev_uuid is not None and record.type_id is not None
        if gpu is not None and any(m.uuid == record.mdev_uuid for m in gpu.mdevs):
            return False
        nodes.create_mdev(record.address, record.type_id, record.mdev_uuid)
        return True
    if record.mode == HostdevMode.VF:
        assert record.type_id is not None
        current = files.vf_current_type(record.address)
        if current == record.type_id:
            return False
        if current is not None:  # set by someone else since: never overwritten under a VM
            raise Conflict(f"VF {record.address} has vGPU type {current}, not {record.type_id}")
        files.set_vf_type(record.address, record.type_id)
        return True
    return False


def tear_down(record: VmHostdevRecord, nodes: LibvirtHost, files: HostFiles) -> None:
    """Remove the vGPU a record made (an mdev, a VF's type); nothing for passthrough."""
    if record.mode == HostdevMode.MDEV and record.mdev_uuid is not None:
        nodes.remove_mdev(record.mdev_uuid)
    elif record.mode == HostdevMode.VF and files.vf_current_type(record.address) == record.type_id:
        files.set_vf_type(record.address, None)
