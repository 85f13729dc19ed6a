"""/v1/workloads, /v1/claims/{id}/lease and /v1/tenants/{name}/idle-timeout: the node agent's API.

Mounted by `install_agent` when `gpupool serve` runs an agent (it always does on one machine).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request

from gpupool.agent import NodeAgent
from gpupool.api.agent_metrics import AgentCollector
from gpupool.api.deps import TenantDep
from gpupool.errors import DeviceBackendError
from gpupool.model.workload import Workload
from gpupool.model.workload_wire import (
    IdleTimeoutPublic,
    IdleTimeoutSet,
    LaunchEnvPublic,
    LeasePublic,
    ProcessPublic,
    WorkloadCreate,
    WorkloadList,
    WorkloadLogs,
    WorkloadPublic,
    WorkloadUpdate,
)


def get_agent(request: Request) -> NodeAgent:
    agent: NodeAgent | None = getattr(request.app.state, "agent", None)
    if agent is None:
        raise DeviceBackendError("this server runs no node agent")
    return agent


AgentDep = Annotated[NodeAgent, Depends(get_agent)]

router = APIRouter(tags=["workloads"])


def workload_public(
    agent: NodeAgent,
    workload: Workload,
    env: dict[str, str] | None = None,
    hints: dict[str, str] | None = None,
) -> WorkloadPublic:
    return WorkloadPublic(
        claim_id=workload.claim_id,
        tenant=workload.tenant,
        node=workload.node,
        command=list(workload.command),
        detached=workload.detached,
        state=workload.state.value,
        pid=workload.pid,
        exit_code=workload.exit_code,
        reason=workload.reason,
        log_path=workload.log_path,
        run_as=workload.run_as,
        agent=workload.agent,
        created_at=workload.created_at,
        started_at=workload.started_at,
        ended_at=workload.ended_at,
        env=env or {},
        hints=hints or {},
        processes=[
            ProcessPublic(pid=pid, device_uuid=device, used_memory_bytes=used)
            for pid, device, used in agent.processes(workload.claim_id)
        ],
    )


@router.put("/v1/claims/{claim_id}/lease", response_model=LeasePublic)
def renew_lease(claim_id: str, agent: AgentDep, tenant: TenantDep) -> LeasePublic:
    """Heartbeat: keep the claim for another TTL; the answer says if the claim is still active."""
    lease, claim = agent.renew_lease(tenant, claim_id)
    return LeasePublic(
        claim_id=claim_id,
        ttl_s=lease.ttl_s,
        expires_at=lease.expires_at,
        state=claim.state.value,
        reason=claim.reason,
        preempt_deadline=claim.preempt_deadline if claim.preempting else None,
    )


@router.post("/v1/claims/{claim_id}/launch-env", response_model=LaunchEnvPublic)
def launch_env(claim_id: str, agent: AgentDep, tenant: TenantDep) -> LaunchEnvPublic:
    """The environment for a process started by hand under a bound claim; for a fractional claim
    this starts the device's MPS daemon (so the process is held to its limits), hence POST."""
    env, hints = agent.launch_env(tenant, claim_id)
    return LaunchEnvPublic(claim_id=claim_id, env=env, hints=hints)


@router.post("/v1/workloads", status_code=201, response_model=WorkloadPublic)
def create_workload(body: WorkloadCreate, agent: AgentDep, tenant: TenantDep) -> WorkloadPublic:
    workload, env, hints = agent.create_workload(
        tenant, body.claim_id, body.command, body.detach, body.cwd, body.env
    )
    return workload_public(agent, workload, env, hints)


@router.get("/v1/workloads", response_model=WorkloadList)
def list_workloads(agent: AgentDep, tenant: TenantDep) -> WorkloadList:
    return WorkloadList(items=[workload_public(agent, w) for w in agent.list_workloads(tenant)])


@router.get("/v1/workloads/{claim_id}", response_model=WorkloadPublic)
def get_workload(claim_id: str, agent: AgentDep, tenant: TenantDep) -> WorkloadPublic:
    return workload_public(agent, agent.workload(tenant, claim_id))


@router.patch("/v1/workloads/{claim_id}", response_model=WorkloadPublic)
def update_workload(
    claim_id: str, body: WorkloadUpdate, agent: AgentDep, tenant: TenantDep
) -> WorkloadPublic:
    return workload_public(agent, agent.update_workload(tenant, claim_id, body.pid, body.exit_code))


@router.delete("/v1/workloads/{claim_id}", response_model=WorkloadPublic)
def stop_workload(claim_id: str, agent: AgentDep, tenant: TenantDep) -> WorkloadPublic:
    """Stop: SIGTERM now, SIGKILL after the grace period; the claim is released when it ends."""
    return workload_public(agent, agent.stop_workload(tenant, claim_id))


@router.get("/v1/workloads/{claim_id}/logs", response_model=WorkloadLogs)
def workload_logs(
    claim_id: str,
    agent: AgentDep,
    tenant: TenantDep,
    offset: Annotated[int, Query(ge=0, le=2**62, description="byte offset to read from")] = 0,
) -> WorkloadLogs:
    data, next_offset, done = agent.read_log(tenant, claim_id, offset)
    return WorkloadLogs(
        claim_id=claim_id,
        offset=offset,
        next_offset=next_offset,
        data=data.decode("utf-8", errors="replace"),
        done=done,
    )


@router.put("/v1/tenants/{name}/idle-timeout", response_model=IdleTimeoutPublic)
def set_idle_timeout(
    name: str, body: IdleTimeoutSet, agent: AgentDep, tenant: TenantDep
) -> IdleTimeoutPublic:
    """Admin: a tenant's idle reclaim timeout (null: server default, 0: never)."""
    agent.set_idle_timeout(tenant, name, body.seconds)
    own, effective = agent.get_idle_timeout(tenant, name)
    return IdleTimeoutPublic(tenant=name, seconds=own, effective_s=effective)


@router.get("/v1/tenants/{name}/idle-timeout", response_model=IdleTimeoutPublic)
def get_idle_timeout(name: str, agent: AgentDep, tenant: TenantDep) -> IdleTimeoutPublic:
    own, effective = agent.get_idle_timeout(tenant, name)
    return IdleTimeoutPublic(tenant=name, seconds=own, effective_s=effective)


def install_agent(app: FastAPI, agent: NodeAgent) -> None:
    """Give the app its node agent, mount the agent's routes and export its metrics."""
    app.state.agent = agent
    app.include_router(router)
    metrics = getattr(app.state, "metrics", None)
    if metrics is not None:
        metrics.registry.register(AgentCollector(agent))
