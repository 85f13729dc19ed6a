"""What the VM host says of each GPU, as `DeviceTraits` for the scheduler's VM rules.

Three sources agree here: the claims bound in the pool (their VM labels say which profile a GPU
hosts and which domain holds it whole), the host (mdevs, VF vGPU types and domain hostdevs,
including those gpupool did not make), and the GPU's own state (driver, IOMMU group, processes).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from gpupool.model import Claim
from gpupool.model.vm import (
    PASSTHROUGH_LABEL,
    VGPU_PROFILE_LABEL,
    VM_DOMAIN_LABEL,
    HostdevMode,
    VgpuProfile,
    VmGpu,
)
from gpupool.scheduler import DeviceLoad
from gpupool.scheduler.contract import DeviceTraits
from gpupool.vms.view import HostView


@dataclass(frozen=True)
class GpuUse:
    """Who uses one GPU now, from the pool and from the host."""

    hosted_profile: str = ""
    passed_through_to: str = ""
    held_by: tuple[str, ...] = ()  # every domain with a hostdev on it
    host_claims: bool = False


def is_vm_claim(claim: Claim) -> bool:
    return VM_DOMAIN_LABEL in claim.spec.labels


def gpu_uses(view: HostView, bound: Iterable[Claim]) -> dict[str, GpuUse]:
    """Per device UUID, what holds it: bound claims first, then what the host shows."""
    profile: dict[str, str] = {}
    whole: dict[str, str] = {}
    holders: dict[str, set[str]] = {}
    host_claims: set[str] = set()
    for claim in bound:
        labels = claim.spec.labels
        for binding in claim.bindings:
            uuid = binding.device_uuid
            if not is_vm_claim(claim):
                host_claims.add(uuid)
                continue
            holders.setdefault(uuid, set()).add(labels[VM_DOMAIN_LABEL])
            if VGPU_PROFILE_LABEL in labels:
                profile.setdefault(uuid, labels[VGPU_PROFILE_LABEL])
            if labels.get(PASSTHROUGH_LABEL) == "true":
                whole.setdefault(uuid, labels[VM_DOMAIN_LABEL])
    for gpu in view.gpus:
        found = _host_profile(gpu)
        if found:
            profile.setdefault(gpu.device_uuid, found)
    for domain in view.domains:
        for item in view.hostdevs(domain):
            if item.gpu is None:
                continue
            holders.setdefault(item.gpu.device_uuid, set()).add(domain.name)
            if item.mode == HostdevMode.PASSTHROUGH:
                whole.setdefault(item.gpu.device_uuid, domain.name)
    return {
        gpu.device_uuid: GpuUse(
            hosted_profile=profile.get(gpu.device_uuid, ""),
            passed_through_to=whole.get(gpu.device_uuid, ""),
            held_by=tuple(sorted(holders.get(gpu.device_uuid, ()))),
            host_claims=gpu.device_uuid in host_claims,
        )
        for gpu in view.gpus
    }


def _host_profile(gpu: VmGpu) -> str:
    """The profile of the vGPUs that exist on the GPU now (mdevs or typed VFs), "" for none."""
    by_type = {(p.mechanism, p.type_id): p.name for p in gpu.profiles}
    for mdev in gpu.mdevs:
        name = by_type.get((HostdevMode.MDEV, mdev.type_id))
        if name:
            return name
    for vf in gpu.virtual_functions:
        if vf.current_type is not None:
            return by_type.get((HostdevMode.VF, vf.current_type), vf.current_type)
    return ""


def creatable(profile: VgpuProfile) -> int:
    """Instances the host can create now (never above what fits on the GPU)."""
    if profile.max_instances:
        return min(profile.available_instances, profile.max_instances)
    return profile.available_instances


def traits_for(gpu: VmGpu, use: GpuUse, with_pids: bool) -> DeviceTraits:
    profiles: dict[str, int] = {}
    for profile in gpu.profiles:
        profiles[profile.name] = max(profiles.get(profile.name, 0), creatable(profile))
    return DeviceTraits(
        profiles=profiles,
        hosted_profile=use.hosted_profile,
        passthrough_capable=gpu.passthrough_capable,
        passed_through_to=use.passed_through_to,
        vm_only=gpu.driver != "nvidia" or bool(use.passed_through_to or use.hosted_profile),
        host_claims=use.host_claims,
        host_pids=gpu.host_pids if with_pids else (),
        label=str(gpu.address),
    )


def annotate(
    loads: list[DeviceLoad], view: HostView, bound: Iterable[Claim], with_pids: bool
) -> list[DeviceLoad]:
    """The loads with each libvirt GPU's traits; devices the host does not show are left as they are."""
    uses = gpu_uses(view, bound)
    by_uuid = {gpu.device_uuid: gpu for gpu in view.gpus}
    result = []
    for load in loads:
        gpu = by_uuid.get(load.device.uuid)
        if gpu is None:
            result.append(load)
            continue
        traits = traits_for(gpu, uses[gpu.device_uuid], with_pids)
        result.append(replace(load, traits=traits))
    return result
