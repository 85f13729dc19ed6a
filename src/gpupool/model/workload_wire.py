"""REST v1 wire schemas for workloads, leases and idle settings (server and SDK share them)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_ARGS = 4096
MAX_ARG_CHARS = 128 * 1024  # Linux MAX_ARG_STRLEN: one argument or variable
MAX_ENV_VARS = 1024
MAX_ENV_NAME_CHARS = 256
MAX_LAUNCH_BYTES = 1024 * 1024  # command + environment together (Linux ARG_MAX is 2 MiB)
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

Arg = Annotated[str, Field(max_length=MAX_ARG_CHARS)]


class WorkloadCreate(BaseModel):
    """Body of POST /v1/workloads.

    `detach=true`: the node agent starts `command` and owns it, as the claim's tenant's OS user.
    `detach=false`: the caller (the `gpupool run` process) starts it with the returned `env`
    (which carries the workload's secret) and reports its pid with PATCH.
    """

    model_config = ConfigDict(extra="forbid")

    claim_id: str = Field(min_length=1, max_length=32)
    command: list[Arg] = Field(min_length=1, max_length=MAX_ARGS)
    detach: bool = False
    cwd: str | None = Field(None, max_length=4096, description="absolute; default: the user's home")
    env: dict[str, Arg] = Field(
        default_factory=dict,
        max_length=MAX_ENV_VARS,
        description="caller's variables for a detached workload (GPUPOOL_*, LD_PRELOAD, ... are dropped)",
    )

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        if not value[0]:
            raise ValueError("the program name is empty")
        if any("\0" in arg for arg in value):
            raise ValueError("an argument holds a NUL byte")
        return value

    @field_validator("cwd")
    @classmethod
    def _cwd(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or "\0" in value):
            raise ValueError("must be an absolute path")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            if len(key) > MAX_ENV_NAME_CHARS or not ENV_NAME_RE.match(key):
                raise ValueError(f"{key[:40]!r} is not a variable name")
            if "\0" in text:
                raise ValueError(f"{key} holds a NUL byte")
        return value

    @model_validator(mode="after")
    def _size(self) -> WorkloadCreate:
        size = sum(len(arg.encode()) + 1 for arg in self.command)
        size += sum(len(k.encode()) + len(v.encode()) + 2 for k, v in self.env.items())
        if size > MAX_LAUNCH_BYTES:
            raise ValueError(f"command and env together take {size} bytes, at most {MAX_LAUNCH_BYTES}")
        return self


class WorkloadUpdate(BaseModel):
    """Body of PATCH /v1/workloads/{id}: the attached process's pid, then its exit code."""

    model_config = ConfigDict(extra="forbid")

    pid: int | None = Field(None, ge=1, le=2**31 - 1)
    exit_code: int | None = Field(None, ge=-255, le=255)


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
    run_as: str | None = Field(None, description="OS user a detached workload runs as (null: the server's)")
    agent: str | None = Field(None, description="the node agent that runs or watches it")
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
    model_config = ConfigDict(extra="forbid")

    seconds: float | None = Field(None, ge=0, description="null: server default; 0: never reclaim")


class IdleTimeoutPublic(BaseModel):
    tenant: str
    seconds: float | None
    effective_s: float | None
