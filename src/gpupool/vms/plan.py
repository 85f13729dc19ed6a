"""A VM attach request -> the claim spec the pool places, after checking it against the host.

Passthrough asks for whole GPUs; a vGPU profile asks for its framebuffer and an equal share of the
GPU's time (100% / the profile's instances per GPU), so quotas and the dashboard count it like any
fractional claim. The claim's labels carry what the scheduler's VM rules need.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.devices.host_files import HostFiles
from gpupool.errors import Conflict, InvalidRequest, NotFound
from gpupool.model import ClaimSpec
from gpupool.model.vm import (
    DEVICES_LABEL,
    PASSTHROUGH_LABEL,
    VGPU_PROFILE_LABEL,
    VM_DOMAIN_LABEL,
    PciAddress,
    VgpuProfile,
    VmGpu,
)
from gpupool.vms.view import HostView


@dataclass(frozen=True)
class AttachPlan:
    spec: ClaimSpec
    profile: VgpuProfile | None  # None: passthrough


def vgpu_share(profile: VgpuProfile) -> tuple[int, int]:
    """(memory bytes, compute percent) one vGPU of the profile takes from its GPU."""
    return profile.framebuffer_bytes, max(1, 100 // max(profile.max_instances, 1))


def find_profile(view: HostView, name: str) -> VgpuProfile:
    """The profile called `name` (or with that type id) on some GPU; InvalidRequest listing the
    host's profiles otherwise."""
    for gpu in view.gpus:
        found = gpu.profile(name)
        if found is not None:
            return found
    offered = sorted({p.name for gpu in view.gpus for p in gpu.profiles})
    listing = (
        ", ".join(offered) if offered else "none: no GPU has vGPU types (is the vGPU host driver loaded?)"
    )
    raise InvalidRequest(f"profile: unknown vGPU profile {name!r} (this host offers {listing})")


def find_gpu(view: HostView, text: str) -> VmGpu:
    """A GPU by PCI address, device UUID or index; NotFound listing the GPUs otherwise."""
    wanted = text.strip()
    for gpu in view.gpus:
        if wanted in (gpu.device_uuid, str(gpu.index)):
            return gpu
    try:
        address = PciAddress.parse(wanted, "device")
    except InvalidRequest:
        address = None
    for gpu in view.gpus:
        if gpu.address == address:
            return gpu
    known = ", ".join(f"{g.index}={g.address}" for g in view.gpus) or "none"
    raise NotFound(f"device: unknown GPU {text!r} (GPUs of this host: {known})")


def busy_message(gpu: VmGpu, files: HostFiles) -> str:
    names = ", ".join(f"{pid} ({files.process_name(pid)})" for pid in gpu.host_pids)
    return (
        f"GPU {gpu.address} is in use by host process(es) {names}: a GPU cannot be passed through "
        "while the host uses it; stop them or pick another GPU"
    )


def plan_attach(
    view: HostView,
    files: HostFiles,
    domain: str,
    gpus: int | None,
    profile_name: str | None,
    device: str | None,
) -> AttachPlan:
    labels = {VM_DOMAIN_LABEL: domain}
    chosen = find_gpu(view, device) if device is not None else None
    if chosen is not None:
        labels[DEVICES_LABEL] = chosen.device_uuid
    if profile_name is not None:
        profile = find_profile(view, profile_name)
        if chosen is not None and chosen.profile(profile.name) is None:
            raise InvalidRequest(f"device: GPU {chosen.address} does not offer vGPU profile {profile.name}")
        if not profile.framebuffer_bytes:
            raise InvalidRequest(
                f"profile: the framebuffer of {profile.name} is unknown (not an NVIDIA name)"
            )
        memory, compute = vgpu_share(profile)
        labels[VGPU_PROFILE_LABEL] = profile.name
        spec = ClaimSpec(gpus=gpus or 1, memory_bytes=memory, compute_percent=compute, labels=labels)
        return AttachPlan(spec, profile)
    count = gpus or 1
    if chosen is not None:
        if count != 1:
            raise InvalidRequest(f"gpus: --device names one GPU, so gpus must be 1 (got {count})")
        if not chosen.passthrough_capable:
            raise Conflict(f"GPU {chosen.address} cannot be passed through: it is in no IOMMU group")
        if chosen.host_pids:
            raise Conflict(busy_message(chosen, files))
    labels[PASSTHROUGH_LABEL] = "true"
    return AttachPlan(ClaimSpec(gpus=count, labels=labels), None)
