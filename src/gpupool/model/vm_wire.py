"""REST v1 wire schemas for VMs (`/v1/vms`); the server and the SDK share them."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from gpupool.model.claim import MAX_GPUS_PER_CLAIM
from gpupool.model.wire import ClaimPublic

# libvirt accepts almost any domain name; these bounds keep names printable and URL-safe.
DOMAIN_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+:-]{0,254}$")
PROFILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}$")


def check_domain_name(name: str) -> str:
    if not DOMAIN_NAME_RE.match(name):
        raise ValueError("a domain name is 1-255 letters, digits, '_', '.', '+', ':' or '-'")
    return name


class VmAttach(BaseModel):
    """Body of POST /v1/vms/{domain}/attach: whole GPUs (`gpus`) or one vGPU of a `profile`."""

    model_config = ConfigDict(extra="forbid")

    gpus: StrictInt | None = Field(
        None, ge=1, le=MAX_GPUS_PER_CLAIM, description="whole GPUs passed through (default 1)"
    )
    profile: str | None = Field(None, description='vGPU profile, e.g. "A100-4C" (or its type id)')
    device: str | None = Field(
        None, max_length=96, description="this GPU only: PCI address (0000:41:00.0), UUID or index"
    )

    @field_validator("profile")
    @classmethod
    def _profile(cls, value: str | None) -> str | None:
        if value is not None and not PROFILE_RE.match(value):
            raise ValueError("a profile name is 1-64 letters, digits, ' ', '_', '.' or '-'")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> VmAttach:
        if self.gpus is not None and self.profile is not None:
            raise ValueError("give gpus (passthrough) or profile (vGPU), not both")
        return self


class VmDetach(BaseModel):
    """Body of POST /v1/vms/{domain}/detach: every gpupool device of the domain, or one claim's."""

    model_config = ConfigDict(extra="forbid")

    claim_id: str | None = Field(None, min_length=1, max_length=32)


class VgpuProfilePublic(BaseModel):
    name: str
    type_id: str
    mechanism: str = Field(description="mdev (mediated device) | vf (SR-IOV VF with a vGPU type)")
    framebuffer_bytes: int
    max_instances: int = Field(description="instances that fit on the empty GPU")
    available_instances: int = Field(description="instances a claim can get now (host and pool agree)")


class VmGpuPublic(BaseModel):
    """One GPU of the VM host and what VMs can get from it now."""

    device_uuid: str
    node: str
    index: int
    address: str
    model: str
    product: str
    memory_total_bytes: int
    driver: str
    iommu_group: int | None
    numa_node: int | None
    passthrough_capable: bool
    passthrough_available: bool = Field(description="a VM can get it whole now")
    hosted_profile: str | None = Field(None, description="the vGPU profile it hosts now")
    held_by: list[str] = Field(default_factory=list, description="domains holding it (or part of it)")
    host_pids: list[int] = Field(default_factory=list, description="host processes holding it open")
    virtual_functions: int = 0
    free_virtual_functions: int = 0
    mdevs: int = 0
    profiles: list[VgpuProfilePublic] = Field(default_factory=list)


class VmGpuList(BaseModel):
    items: list[VmGpuPublic]


class VmHostdevPublic(BaseModel):
    """A host device a domain holds: gpupool's (with its claim) or found unrecorded in its XML."""

    kind: str = Field(description="passthrough | mdev | vf")
    source: str = Field(description="PCI address, or mdev UUID")
    device_uuid: str | None = None
    gpu_address: str | None = None
    claim_id: str | None = None
    profile: str | None = None
    state: str = Field(description="attaching | attached | detaching | unrecorded")


class VmDomainPublic(BaseModel):
    name: str
    uuid: str
    state: str = Field(description="running | shut off")
    persistent: bool
    owner: str | None = Field(None, description="tenant named in the domain's gpupool metadata")
    hostdevs: list[VmHostdevPublic] = Field(default_factory=list)
    hostdev_xml: list[str] = Field(
        default_factory=list, description="each <hostdev> of the domain's config (next start), as XML"
    )
    live_hostdev_xml: list[str] = Field(
        default_factory=list, description="each <hostdev> of the running domain, as XML"
    )


class VmDomainList(BaseModel):
    items: list[VmDomainPublic]


class VmAttachResult(BaseModel):
    domain: VmDomainPublic
    claim: ClaimPublic
    live: bool = Field(description="the running domain has it now")
    config: bool = Field(description="the domain's config has it (survives a restart of the VM)")
    note: str = ""


class VmDetachResult(BaseModel):
    domain: str
    released: list[str] = Field(description="claims released")
