"""`gpupool.Client`: the Python SDK over REST v1, which the CLI itself uses.

HTTP errors come back as gpupool's own exceptions (see `gpupool.errors`), so callers catch
`NotFound` or `InvalidRequest`, never an httpx type.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from gpupool.client.vms import VmCalls
from gpupool.client_config import load_client_config
from gpupool.errors import (
    ERRORS_BY_STATUS,
    Conflict,
    GpupoolError,
    InvalidRequest,
    NotFound,
    ServerUnreachable,
    WaitTimeout,
)
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

FULL_CLAIM_ID = re.compile(r"^c-[0-9a-f]{12}$")
WAIT_POLL_S = 0.25


class Client:
    """A connection to one gpupool server. URL and token default to GPUPOOL_URL / GPUPOOL_TOKEN or
    the config `gpupool serve` wrote for this user (its running default server; see `client_config`)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        config = load_client_config(url)
        self.url = config.url
        self.token = token if token is not None else config.token
        self.other_servers = config.others  # other running servers this user started (not `url`)
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
        wait: bool = False,
        timeout_s: float | None = None,
        on_wait: Callable[[ClaimPublic], None] | None = None,
    ) -> ClaimPublic:
        """Create a claim; with `lease_ttl_s` its lease is taken in the same transaction.

        `memory` is "10GiB" (binary), "10GB" (decimal) or an integer of bytes. `mig` asks for a
        whole MIG instance of that profile (`model` then names the parent). A claim no node of
        the pool could ever hold raises `InvalidRequest` at once. One that does not fit *now* comes
        back pending, unless `wait=True`: then this returns once it is bound, calling `on_wait`
        with each new pending state; after `timeout_s` (or on Ctrl-C) the claim is released and
        `WaitTimeout` (or KeyboardInterrupt) raised, so nothing is left holding a place.
        """
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
        created = self._call("POST", "/v1/claims", ClaimPublic, json=body)
        if not wait:
            return created
        try:
            return self.wait_bound(created, timeout_s, on_wait)
        except WaitTimeout as exc:
            self._release_after_wait(created.id)
            raise WaitTimeout(f"{exc.message}; released it") from None
        except KeyboardInterrupt:
            self._release_after_wait(created.id)
            raise

    def wait_bound(
        self,
        claim: ClaimPublic | str,
        timeout_s: float | None = None,
        on_wait: Callable[[ClaimPublic], None] | None = None,
    ) -> ClaimPublic:
        """Poll a claim until it is bound; `WaitTimeout` after `timeout_s`, `Conflict` if it ends."""
        current = claim if isinstance(claim, ClaimPublic) else self.get_claim(claim)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        shown: tuple[str, int | None] | None = None
        while current.state == "pending":
            if on_wait is not None and (current.reason, current.queue_position) != shown:
                shown = (current.reason, current.queue_position)
                on_wait(current)
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(
                    f"claim {current.id} was not bound within {timeout_s:g}s ({current.reason})"
                )
            left = WAIT_POLL_S if deadline is None else deadline - time.monotonic()
            time.sleep(max(0.0, min(WAIT_POLL_S, left)))
            current = self.get_claim(current.id)
        if current.state != "bound":
            ended = f"{current.state}" + (f": {current.reason}" if current.reason else "")
            raise Conflict(f"claim {current.id} ended while waiting to be bound ({ended})")
        return current

    def _release_after_wait(self, claim_id: str) -> None:
        # It may have ended meanwhile, or the server is gone: then its lease (if any) covers it.
        with contextlib.suppress(GpupoolError):
            self.release(claim_id)

    def resolve_claim_id(self, claim_id: str) -> str:
        """A full claim id for `claim_id` or a unique prefix of one (`c-72e`, or `72e`)."""
        text = claim_id.strip()
        if FULL_CLAIM_ID.match(text):
            return text
        if not text:
            raise InvalidRequest("claim: an empty claim id")
        prefix = text if text.startswith("c-") else f"c-{text}"
        matches = self._call("GET", "/v1/claims", ClaimList, params={"prefix": prefix}).items
        ids = sorted({item.id for item in matches})
        if not ids:
            raise NotFound(f"claim {text} not found (no claim id starts with {prefix!r})")
        if len(ids) > 1:
            shown = ", ".join(ids[:4]) + (", ..." if len(ids) > 4 else "")
            raise InvalidRequest(
                f"claim: {text!r} is ambiguous: it starts {len(ids)} claim ids ({shown}); give more of it"
            )
        return ids[0]

    def get_claim(self, claim_id: str) -> ClaimPublic:
        return self._call("GET", f"/v1/claims/{self.resolve_claim_id(claim_id)}", ClaimPublic)

    def claims(self, states: list[str] | None = None) -> list[ClaimPublic]:
        params = [("state", s) for s in states or []]
        return self._call("GET", "/v1/claims", ClaimList, params=params).items

    def release(self, claim_id: str) -> ClaimPublic:
        return self._call("DELETE", f"/v1/claims/{self.resolve_claim_id(claim_id)}", ClaimPublic)

    def events(self, claim_id: str | None = None, after: int = 0, limit: int = 200) -> list[EventPublic]:
        params: dict[str, Any] = {"after": after, "limit": limit}
        if claim_id:
            params["claim"] = self.resolve_claim_id(claim_id)
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
        return self._call("POST", f"/v1/claims/{self.resolve_claim_id(claim_id)}/preempt", ClaimPublic)

    def overview(self, history: bool = False) -> Overview:
        """The dashboard's snapshot: devices, queue, tenants and recent events (for `gpupool top`)."""
        return self._call("GET", "/v1/overview", Overview, params={"history": history})

    # ------------------------------------------------- workloads and leases
    def renew_lease(self, claim_id: str) -> LeasePublic:
        """Heartbeat: keep the claim for another server lease TTL; says if it is still active."""
        return self._call("PUT", f"/v1/claims/{self.resolve_claim_id(claim_id)}/lease", LeasePublic)

    def launch_env(self, claim_id: str) -> LaunchEnvPublic:
        """The environment for a process started by hand under a bound claim (starts MPS if needed)."""
        return self._call("POST", f"/v1/claims/{self.resolve_claim_id(claim_id)}/launch-env", LaunchEnvPublic)

    def create_workload(
        self,
        claim_id: str,
        command: list[str],
        detach: bool = False,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> WorkloadPublic:
        """Register (attached) or start (detach=True) a workload for a bound claim."""
        claim_id = self.resolve_claim_id(claim_id)
        body = {"claim_id": claim_id, "command": command, "detach": detach, "cwd": cwd, "env": env or {}}
        return self._call("POST", "/v1/workloads", WorkloadPublic, json=body)

    def update_workload(
        self, claim_id: str, pid: int | None = None, exit_code: int | None = None
    ) -> WorkloadPublic:
        body = {k: v for k, v in (("pid", pid), ("exit_code", exit_code)) if v is not None}
        path = f"/v1/workloads/{self.resolve_claim_id(claim_id)}"
        return self._call("PATCH", path, WorkloadPublic, json=body)

    def workloads(self) -> list[WorkloadPublic]:
        return self._call("GET", "/v1/workloads", WorkloadList).items

    def workload(self, claim_id: str) -> WorkloadPublic:
        return self._call("GET", f"/v1/workloads/{self.resolve_claim_id(claim_id)}", WorkloadPublic)

    def workload_logs(self, claim_id: str, offset: int = 0) -> WorkloadLogs:
        path = f"/v1/workloads/{self.resolve_claim_id(claim_id)}/logs"
        return self._call("GET", path, WorkloadLogs, params={"offset": offset})

    def stop_workload(self, claim_id: str) -> WorkloadPublic:
        return self._call("DELETE", f"/v1/workloads/{self.resolve_claim_id(claim_id)}", WorkloadPublic)

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
