"""REST v1 wire schemas, shared by the server and the SDK (Create / Public variants)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

from gpupool.errors import InvalidRequest
from gpupool.model.claim import MAX_GPUS_PER_CLAIM, ClaimSpec
from gpupool.model.mig import parse_profile
from gpupool.model.units import MiB, for_pydantic, parse_percent, parse_size

MIN_CLAIM_MEMORY_BYTES = MiB
"""MPS pins device memory in whole MiB; a smaller quota is always a mistake (a unit-less byte count)."""


def parse_claim_memory(value: int | str, field: str = "memory") -> int:
    """A claim's memory per vGPU: a size (see `SIZE_RULE`) of at least 1 MiB."""
    size = parse_size(value, field)
    if size < MIN_CLAIM_MEMORY_BYTES:
        raise InvalidRequest(
            f"{field}: {size} bytes is less than 1MiB, the smallest vGPU memory limit "
            f"(a number without a unit is bytes: did you mean '{size}GiB'?)"
        )
    return size


TENANT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
USER_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")


class ClaimCreate(BaseModel):
    """Body of POST /v1/claims. Sizes are per GPU; omit memory and compute for whole GPUs."""

    model_config = ConfigDict(extra="forbid")

    gpus: StrictInt = Field(1, ge=1, le=MAX_GPUS_PER_CLAIM, description="number of vGPUs, all on one node")
    memory: StrictInt | str | None = Field(
        None, description='memory per vGPU: "10GiB" (binary), "10GB" (decimal) or an integer of bytes'
    )
    compute: StrictInt | str | None = Field(None, description="share of SMs per vGPU, percent 1..100")
    model: str | None = Field(None, max_length=128, description='device model pattern, e.g. "H100*"')
    mig: str | None = Field(
        None,
        max_length=32,
        description='a whole MIG instance of this profile, e.g. "1g.10gb" (model then names the parent)',
    )
    priority: StrictInt = Field(0, ge=-1000, le=1000)
    preemptible: StrictBool = False
    wait: StrictBool = Field(False, description="accepted for compatibility; claims always queue")
    labels: dict[str, str] = Field(default_factory=dict)
    lease_ttl_s: float | None = Field(
        None,
        ge=1,
        le=86400,
        description="take a lease with the claim (same transaction): reclaimed unless renewed within",
    )

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            for_pydantic(parse_claim_memory, value, "memory")
        return value

    @field_validator("compute")
    @classmethod
    def _compute(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            for_pydantic(parse_percent, value, "compute")
        return value

    @field_validator("mig")
    @classmethod
    def _mig(cls, value: str | None) -> str | None:
        if value is not None:
            for_pydantic(lambda text, _field: parse_profile(text), value, "mig")
        return value

    def to_spec(self) -> ClaimSpec:
        return ClaimSpec(
            gpus=self.gpus,
            memory_bytes=None if self.memory is None else parse_claim_memory(self.memory),
            compute_percent=None if self.compute is None else parse_percent(self.compute, "compute"),
            model=self.model or None,
            priority=self.priority,
            preemptible=self.preemptible,
            labels=dict(self.labels),
            mig=self.mig,
        )


class BindingPublic(BaseModel):
    device_uuid: str
    node: str
    device_index: int
    memory_bytes: int
    compute_percent: int
    whole_device: bool
    missing: bool = False


class ClaimPublic(BaseModel):
    id: str
    tenant: str
    state: str
    reason: str
    gpus: int
    memory_bytes: int | None
    compute_percent: int | None
    model: str | None
    mig: str | None = None
    priority: int
    preemptible: bool
    labels: dict[str, str]
    bindings: list[BindingPublic]
    env: dict[str, str]
    queue_position: int | None = None
    quota_reason: str | None = Field(None, description="the quota that holds a pending claim back")
    created_at: float
    updated_at: float
    bound_at: float | None = None
    ended_at: float | None = None
    preempt_deadline: float | None = Field(
        None, description="set while a bound claim is preempted: its workload must stop by then"
    )


class DeviceSummary(BaseModel):
    """What every view of a device shows: where it is, its size, what is bound, what it does."""

    uuid: str
    node: str
    index: int
    model: str
    memory_total_bytes: int
    memory_allocated_bytes: int
    compute_allocated_percent: int
    memory_used_bytes: int | None = None
    utilization_percent: float | None = None


class DevicePublic(DeviceSummary):
    sm_count: int = 0
    mig_capable: bool = False
    mig_mode: bool = False
    parent_uuid: str | None = None
    schedulable: bool = Field(True, description="false for a GPU in MIG mode: only its instances go out")
    nvlink_peers: list[str] = Field(default_factory=list)
    claims: list[str] = Field(default_factory=list)


class DeviceList(BaseModel):
    items: list[DevicePublic]


class ClaimList(BaseModel):
    items: list[ClaimPublic]


class EventPublic(BaseModel):
    id: int
    timestamp: float
    actor: str
    action: str
    claim_id: str | None = None
    tenant: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class EventList(BaseModel):
    items: list[EventPublic]


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=63)]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not TENANT_NAME_RE.match(value) or value == "admin":
            raise ValueError(
                "must be lowercase letters, digits, '-', '_' or '.', start with a letter or digit, "
                "and not be 'admin'"
            )
        return value


class TenantCreated(BaseModel):
    name: str
    token: str


class TenantPublic(BaseModel):
    name: str
    created_at: float
    run_as: str | None = Field(None, description="OS user its detached workloads run as (admin view)")


class TenantUpdate(BaseModel):
    """Body of PATCH /v1/tenants/{name} (admin)."""

    model_config = ConfigDict(extra="forbid")

    run_as: str | None = Field(
        ...,
        max_length=32,
        description="OS user the node agent runs this tenant's detached workloads as; null removes it",
    )

    @field_validator("run_as")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not USER_NAME_RE.match(value):
            raise ValueError(
                "must be a POSIX user name (letters, digits, '_', '-', '.'; not starting with '-')"
            )
        return value


class TenantList(BaseModel):
    items: list[TenantPublic]


class Health(BaseModel):
    status: str
    version: str
    backend: str
    devices: int
    policy: str
