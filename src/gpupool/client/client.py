"""`gpupool.Client`: the Python SDK over REST v1, which the CLI itself uses.

HTTP errors come back as gpupool's own exceptions (see `gpupool.errors`), so callers catch
`NotFound` or `InvalidRequest`, never an httpx type.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from gpupool.client.vms import VmCalls
from gpupool.config import load_client_config
from gpupool.errors import ERRORS_BY_STATUS, GpupoolError, ServerUnreachable
from gpupool.model.node_wire import NodeList
from gpupool.model.overview import Overview
from gpupool.model.quota import QuotaList, QuotaPublic
from gpupool.model.wire import (
    ClaimList,
    ClaimPublic,
    DeviceList,
    DevicePublic,
    EventList,
    EventPublic,
    Health,
    TenantCreated,
    TenantList,
    TenantPublic,
)
from gpupool.model.workload_wire import (
    IdleTimeoutPublic,
    LaunchEnvPublic,
    LeasePublic,
    WorkloadList,
    WorkloadLogs,
    WorkloadPublic,
)

T = TypeVar("T", bound=BaseModel)


class Client:
    """A connection to one gpupool server. URL and token default to GPUPOOL_URL / GPUPOOL_TOKEN or
    the config `gpupool serve` wrote for this user."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        config = load_client_config()
        self.url = (url or (config.url if config else "http://127.0.0.1:7070")).rstrip("/")
        self.token = token if token is not None else (config.token if config else "")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s, transport=transport)

    def close(self) -> None:
        self._http.close()

    @property
    def vms(self) -> VmCalls:
        """The VM calls (`/v1/vms`)."""
        return VmCalls(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ calls
    def health(self) -> Health:
        return self._call("GET", "/healthz", Health)

    def devices(self) -> list[DevicePublic]:
        return self._call("GET", "/v1/devices", DeviceList).items

    def nodes(self) -> NodeList:
        """The pool's nodes; in cluster mode (`mode == "ray"`) with their Ray node ids."""
        return self._call("GET", "/v1/nodes", NodeList)

    def claim(
        self,
        gpus: int = 1,
        memory: str | int | None = None,
        compute: int | str | None = None,
        model: str | None = None,
        priority: int = 0,
        preemptible: bool = False,
        labels: dict[str, str] | None = None,
        lease_ttl_s: float | None = None,
        mig: str | None = None,
    ) -> ClaimPublic:
        """Create a claim; with `lease_ttl_s` its lease is taken in the same transaction. `mig`
        asks for a whole MIG instance of that profile (`model` then names the parent)."""
        body: dict[str, Any] = {"gpus": gpus, "priority": priority, "preemptible": preemptible}
        if memory is not None:
            body["memory"] = memory
        if compute is not None:
            body["compute"] = compute
        if model:
            body["model"] = model
        if mig:
            body["mig"] = mig
        if labels:
            body["labels"] = labels
        if lease_ttl_s is not None:
            body["lease_ttl_s"] = lease_ttl_s
        return self._call("POST", "/v1/claims", ClaimPublic, json=body)

    def get_claim(self, claim_id: str) -> ClaimPublic:
        return self._call("GET", f"/v1/claims/{claim_id}", ClaimPublic)

    def claims(self, states: list[str] | None = None) -> list[ClaimPublic]:
        params = [("state", s) for s in states or []]
        return self._call("GET", "/v1/claims", ClaimList, params=params).items

    def release(self, claim_id: str) -> ClaimPublic:
        return self._call("DELETE", f"/v1/claims/{claim_id}", ClaimPublic)

    def events(self, claim_id: str | None = None, after: int = 0, limit: int = 200) -> list[EventPublic]:
        params: dict[str, Any] = {"after": after, "limit": limit}
        if claim_id:
            params["claim"] = claim_id
        return self._call("GET", "/v1/events", EventList, params=params).items

    def create_tenant(self, name: str) -> TenantCreated:
        return self._call("POST", "/v1/tenants", TenantCreated, json={"name": name})

    def tenants(self) -> list[TenantPublic]:
        return self._call("GET", "/v1/tenants", TenantList).items

    def set_quota(self, tenant: str, guarantee: str | None = None, limit: str | None = None) -> QuotaPublic:
        """Set a tenant's guarantee and limit (admin), e.g. guarantee="2gpu", limit="4gpu,320GiB"."""
        body = {"guarantee": guarantee, "limit": limit}
        return self._call("PUT", f"/v1/tenants/{tenant}/quota", QuotaPublic, json=body)

    def set_run_as(self, tenant: str, user: str | None) -> TenantPublic:
        """Map a tenant to the OS user its detached workloads run as (admin); None removes it."""
        return self._call("PATCH", f"/v1/tenants/{tenant}", TenantPublic, json={"run_as": user})

    def quotas(self) -> list[QuotaPublic]:
        return self._call("GET", "/v1/quotas", QuotaList).items

    def preempt(self, claim_id: str) -> ClaimPublic:
        """Preempt a bound claim now (admin)."""
        return self._call("POST", f"/v1/claims/{claim_id}/preempt", ClaimPublic)

    def overview(self, history: bool = False) -> Overview:
        """The dashboard's snapshot: devices, queue, tenants and recent events (for `gpupool top`)."""
        return self._call("GET", "/v1/overview", Overview, params={"history": history})

    # ------------------------------------------------- workloads and leases
    def renew_lease(self, claim_id: str) -> LeasePublic:
        """Heartbeat: keep the claim for another server lease TTL; says if it is still active."""
        return self._call("PUT", f"/v1/claims/{claim_id}/lease", LeasePublic)

    def launch_env(self, claim_id: str) -> LaunchEnvPublic:
        """The environment for a process started by hand under a bound claim (starts MPS if needed)."""
        return self._call("POST", f"/v1/claims/{claim_id}/launch-env", LaunchEnvPublic)

    def create_workload(
        self,
        claim_id: str,
        command: list[str],
        detach: bool = False,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> WorkloadPublic:
        """Register (attached) or start (detach=True) a workload for a bound claim."""
        body = {"claim_id": claim_id, "command": command, "detach": detach, "cwd": cwd, "env": env or {}}
        return self._call("POST", "/v1/workloads", WorkloadPublic, json=body)

    def update_workload(
        self, claim_id: str, pid: int | None = None, exit_code: int | None = None
    ) -> WorkloadPublic:
        body = {k: v for k, v in (("pid", pid), ("exit_code", exit_code)) if v is not None}
        return self._call("PATCH", f"/v1/workloads/{claim_id}", WorkloadPublic, json=body)

    def workloads(self) -> list[WorkloadPublic]:
        return self._call("GET", "/v1/workloads", WorkloadList).items

    def workload(self, claim_id: str) -> WorkloadPublic:
        return self._call("GET", f"/v1/workloads/{claim_id}", WorkloadPublic)

    def workload_logs(self, claim_id: str, offset: int = 0) -> WorkloadLogs:
        return self._call("GET", f"/v1/workloads/{claim_id}/logs", WorkloadLogs, params={"offset": offset})

    def stop_workload(self, claim_id: str) -> WorkloadPublic:
        return self._call("DELETE", f"/v1/workloads/{claim_id}", WorkloadPublic)

    def set_idle_timeout(self, tenant: str, seconds: float | None) -> IdleTimeoutPublic:
        path = f"/v1/tenants/{tenant}/idle-timeout"
        return self._call("PUT", path, IdleTimeoutPublic, json={"seconds": seconds})

    def idle_timeout(self, tenant: str) -> IdleTimeoutPublic:
        return self._call("GET", f"/v1/tenants/{tenant}/idle-timeout", IdleTimeoutPublic)

    # --------------------------------------------------------------- plumbing
    def _call(self, method: str, path: str, schema: type[T], **kwargs: Any) -> T:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"cannot reach gpupool at {self.url} ({exc.__class__.__name__}); is `gpupool serve` running?"
            ) from exc
        if response.status_code >= 400:
            raise _error_from(response)
        return schema.model_validate(response.json())


def _error_from(response: httpx.Response) -> GpupoolError:
    try:
        detail = str(response.json().get("detail", response.text))
    except ValueError:
        detail = response.text or response.reason_phrase
    error_class = ERRORS_BY_STATUS.get(response.status_code, GpupoolError)
    error = error_class(detail)
    error.status_code = response.status_code
    return error
