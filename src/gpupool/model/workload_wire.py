"""REST v1 wire schemas for workloads, leases and idle settings (server and SDK share them)."""

from __future__ import annotations

from typing import Annotated

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, Field, Strict

from gpupool.model.wire_types import WHOLE


class WorkloadCreate(BaseModel):
    """Body of POST /v1/workloads.

    `detach=true`: the node agent starts `command` and owns it. `detach=false`: the caller (the
    `gpupool run` process) starts it with the returned `env` and reports its pid with PATCH.
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    claim_id: str = Field(min_length=1, max_length=32)
    command: list[str] = Field(min_length=1, max_length=4096)
    detach: bool = False
    cwd: str | None = Field(None, max_length=4096)
    env: dict[str, str] = Field(default_factory=dict, description="caller's environment (detach only)")


class WorkloadUpdate(BaseModel):
    """Body of PATCH /v1/workloads/{id}: the attached process's pid, then its exit code."""

    model_config = ConfigDict(extra="forbid", strict=True)

    pid: Annotated[int, Strict(), Ge(1), Le(2**31 - 1), WHOLE] | None = None
    exit_code: Annotated[int, Strict(), Ge(-255), Le(255), WHOLE] | None = None


class ProcessPublic(BaseModel):
    pid: int
    device_uuid: str
    used_memory_bytes: int


class WorkloadPublic(BaseModel):
    claim_id: str
    tenant: str
    node: str
    command: list[str]
    detached: bool
    state: str
    pid: int | None = None
    exit_code: int | None = None
    reason: str = ""
    log_path: str | None = None
    created_at: float
    started_at: float | None = None
    ended_at: float | None = None
    env: dict[str, str] = Field(default_factory=dict, description="set these (isolation)")
    hints: dict[str, str] = Field(default_factory=dict, description="set these unless already set")
    processes: list[ProcessPublic] = Field(default_factory=list)


class LaunchEnvPublic(BaseModel):
    """What a process started by hand under a bound claim needs (`gpupool claim --env`)."""

    claim_id: str
    env: dict[str, str] = Field(default_factory=dict, description="set these (isolation)")
    hints: dict[str, str] = Field(default_factory=dict, description="set these unless already set")


class WorkloadList(BaseModel):
    items: list[WorkloadPublic]


class WorkloadLogs(BaseModel):
    """A chunk of a detached workload's log from byte `offset`; `next_offset` to follow on."""

    claim_id: str
    offset: int
    next_offset: int
    data: str
    done: bool


class LeasePublic(BaseModel):
    claim_id: str
    ttl_s: float
    expires_at: float
    state: str
    reason: str
    preempt_deadline: float | None = Field(
        None, description="the claim is preempted: SIGTERM the workload now, SIGKILL at this time"
    )


class IdleTimeoutSet(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    seconds: float | None = Field(None, ge=0, description="null: server default; 0: never reclaim")


class IdleTimeoutPublic(BaseModel):
    tenant: str
    seconds: float | None
    effective_s: float | None
