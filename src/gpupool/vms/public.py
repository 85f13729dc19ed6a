"""VM host state -> the wire schemas of `/v1/vms` (what a viewer may see of it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gpupool.devices.libvirt_config import HostdevMdev, HostdevPCI, hostdev_elements
from gpupool.devices.libvirt_host import DomainState
from gpupool.model import Tenant
from gpupool.model.vm import VgpuProfile, VmGpu, VmHostdevRecord
from gpupool.model.vm_wire import VgpuProfilePublic, VmDomainPublic, VmGpuPublic, VmHostdevPublic
from gpupool.vms import hostdevs
from gpupool.vms.plan import vgpu_share
from gpupool.vms.reconcile import Unrecorded
from gpupool.vms.traits import GpuUse, creatable
from gpupool.vms.view import HostView

OTHER_DOMAIN = "another tenant's VM"


def available_instances(gpu: VmGpu, profile: VgpuProfile, use: GpuUse, allocated: tuple[int, int]) -> int:
    """Instances of the profile a claim could get on the GPU now: the host can create them, the
    pool has room for them, and the GPU hosts nothing that excludes them."""
    if use.passed_through_to or use.host_claims or use.hosted_profile not in ("", profile.name):
        return 0
    memory, compute = vgpu_share(profile)
    if not memory:
        return 0
    free_memory = gpu.memory_total_bytes - allocated[0]
    free_compute = 100 - allocated[1]
    return max(0, min(creatable(profile), free_memory // memory, free_compute // compute))


def gpu_public(
    gpu: VmGpu,
    use: GpuUse,
    allocated: tuple[int, int],
    visible_domains: set[str] | None,
) -> VmGpuPublic:
    """`visible_domains`: the domains the viewer may name (None: all, the admin)."""
    held_by = [
        name if visible_domains is None or name in visible_domains else OTHER_DOMAIN for name in use.held_by
    ]
    return VmGpuPublic(
        device_uuid=gpu.device_uuid,
        node=gpu.node,
        index=gpu.index,
        address=str(gpu.address),
        model=gpu.model,
        product=gpu.product,
        memory_total_bytes=gpu.memory_total_bytes,
        driver=gpu.driver or "none",
        iommu_group=gpu.iommu_group,
        numa_node=gpu.numa_node,
        passthrough_capable=gpu.passthrough_capable,
        passthrough_available=gpu.passthrough_capable
        and allocated == (0, 0)
        and not (use.held_by or use.hosted_profile or use.host_claims or gpu.host_pids),
        hosted_profile=use.hosted_profile or None,
        held_by=sorted(set(held_by)),
        host_pids=list(gpu.host_pids),
        virtual_functions=len(gpu.virtual_functions),
        free_virtual_functions=sum(1 for vf in gpu.virtual_functions if vf.current_type is None),
        mdevs=len(gpu.mdevs),
        profiles=[
            VgpuProfilePublic(
                name=p.name,
                type_id=p.type_id,
                mechanism=p.mechanism.value,
                framebuffer_bytes=p.framebuffer_bytes,
                max_instances=p.max_instances,
                available_instances=available_instances(gpu, p, use, allocated),
            )
            for p in gpu.profiles
        ],
    )


def domain_public(
    domain: DomainState,
    view: HostView,
    records: Sequence[VmHostdevRecord],
    unrecorded: Sequence[Unrecorded],
) -> VmDomainPublic:
    items = []
    for record in records:
        gpu = view.gpu(record.device_uuid)
        hostdev = hostdevs.hostdev_of(record)
        items.append(
            VmHostdevPublic(
                kind=record.mode.value,
                source=_source(hostdev),
                device_uuid=record.device_uuid,
                gpu_address=str(gpu.address) if gpu else None,
                claim_id=record.claim_id,
                profile=record.profile,
                state=record.state.value,
            )
        )
    for entry in unrecorded:
        if entry.domain_uuid != domain.uuid:
            continue
        gpu = entry.found.gpu
        items.append(
            VmHostdevPublic(
                kind=entry.found.mode.value,
                source=_source(entry.found.hostdev),
                device_uuid=gpu.device_uuid if gpu else None,
                gpu_address=str(gpu.address) if gpu else None,
                state="unrecorded",
            )
        )
    return VmDomainPublic(
        name=domain.name,
        uuid=domain.uuid,
        state="running" if domain.active else "shut off",
        persistent=domain.persistent,
        owner=domain.config.owner,
        hostdevs=items,
        hostdev_xml=hostdev_elements(domain.config_xml),
        live_hostdev_xml=hostdev_elements(domain.xml) if domain.active else [],
    )


def _source(hostdev: HostdevPCI | HostdevMdev) -> str:
    return str(hostdev.address) if isinstance(hostdev, HostdevPCI) else hostdev.uuid


def visible_domains(
    viewer: Tenant, domains: Sequence[DomainState], tenants_of: Mapping[str, set[str]]
) -> set[str] | None:
    """Names of the domains a viewer may see: the admin all (None), a tenant those that name it in
    their metadata or hold its claims (`tenants_of`: domain uuid -> tenants with records there)."""
    if viewer.is_admin:
        return None
    return {
        d.name
        for d in domains
        if d.config.owner == viewer.name or viewer.name in tenants_of.get(d.uuid, set())
    }
