"""The VM calls of the SDK (`client.vms`): /v1/vms, served by `gpupool serve --libvirt URI`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from gpupool.model.vm_wire import (
    VmAttachResult,
    VmDetachResult,
    VmDomainList,
    VmDomainPublic,
    VmGpuList,
    VmGpuPublic,
)

if TYPE_CHECKING:
    from gpupool.client.client import Client


class VmCalls:
    """`client.vms.attach("web-1", profile="A100-4C")` and friends."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def domains(self) -> list[VmDomainPublic]:
        return self._client._call("GET", "/v1/vms", VmDomainList).items

    def domain(self, name: str) -> VmDomainPublic:
        return self._client._call("GET", f"/v1/vms/{quote(name, safe='')}", VmDomainPublic)

    def gpus(self) -> list[VmGpuPublic]:
        """The host's GPUs with passthrough state, vGPU profiles and available instances."""
        return self._client._call("GET", "/v1/vms/gpus", VmGpuList).items

    def attach(
        self, domain: str, gpus: int | None = None, profile: str | None = None, device: str | None = None
    ) -> VmAttachResult:
        """Whole GPUs (`gpus`, default 1) or one vGPU of `profile` for the domain, bound now or an error."""
        body: dict[str, Any] = {}
        for key, value in (("gpus", gpus), ("profile", profile), ("device", device)):
            if value is not None:
                body[key] = value
        path = f"/v1/vms/{quote(domain, safe='')}/attach"
        return self._client._call("POST", path, VmAttachResult, json=body)

    def detach(self, domain: str, claim_id: str | None = None) -> VmDetachResult:
        body = {"claim_id": claim_id} if claim_id else {}
        return self._client._call(
            "POST", f"/v1/vms/{quote(domain, safe='')}/detach", VmDetachResult, json=body
        )
