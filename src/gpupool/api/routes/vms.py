"""/v1/vms: libvirt domains and the GPUs gpupool attached to them (`gpupool serve --libvirt URI`).

Attach binds a claim at once or answers why not (409); a VM never waits in the queue. A tenant sees
and changes only the domains whose gpupool metadata names it; the admin acts for any tenant.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request, status

from gpupool.api.convert import claim_public
from gpupool.api.deps import TenantDep
from gpupool.errors import InvalidRequest, NotFound
from gpupool.model.vm_wire import (
    VmAttach,
    VmAttachResult,
    VmDetach,
    VmDetachResult,
    VmDomainList,
    VmDomainPublic,
    VmGpuList,
    check_domain_name,
)
from gpupool.vms import VmService

router = APIRouter(prefix="/v1/vms", tags=["vms"])


def get_vms(request: Request) -> VmService:
    service: VmService | None = getattr(request.app.state, "vms", None)
    if service is None:
        raise NotFound("VM support is off on this server (start it with `gpupool serve --libvirt URI`)")
    return service


def domain_name(domain: Annotated[str, Path(max_length=255, description="libvirt domain name")]) -> str:
    try:
        return check_domain_name(domain)
    except ValueError as exc:
        raise InvalidRequest(f"domain: {exc}") from None


VmsDep = Annotated[VmService, Depends(get_vms)]
DomainDep = Annotated[str, Depends(domain_name)]


@router.get("", response_model=VmDomainList)
def list_domains(vms: VmsDep, tenant: TenantDep) -> VmDomainList:
    return vms.domains(tenant)


@router.get("/gpus", response_model=VmGpuList)
def list_gpus(vms: VmsDep, tenant: TenantDep) -> VmGpuList:
    """The host's GPUs: passthrough capability, vGPU profiles and the instances available now."""
    return vms.gpus(tenant)


@router.get("/{domain}", response_model=VmDomainPublic)
def get_domain(domain: DomainDep, vms: VmsDep, tenant: TenantDep) -> VmDomainPublic:
    return vms.domain(tenant, domain)


@router.post("/{domain}/attach", status_code=status.HTTP_201_CREATED, response_model=VmAttachResult)
def attach(domain: DomainDep, body: VmAttach, vms: VmsDep, tenant: TenantDep) -> VmAttachResult:
    claim, placed, state = vms.attach(tenant, domain, body.gpus, body.profile, body.device)
    return VmAttachResult(
        domain=state, claim=claim_public(claim), live=placed.live, config=placed.config, note=placed.note
    )


@router.post("/{domain}/detach", response_model=VmDetachResult)
def detach(domain: DomainDep, body: VmDetach, vms: VmsDep, tenant: TenantDep) -> VmDetachResult:
    return VmDetachResult(domain=domain, released=vms.detach(tenant, domain, body.claim_id))
