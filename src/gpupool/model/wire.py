"""REST v1 wire schemas, shared by the server and the SDK (Create / Public variants)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gpupool.model.claim import (
    MAX_GPUS_PER_CLAIM,
    MAX_LABEL_KEY_CHARS,
    MAX_LABEL_VALUE_CHARS,
    MAX_LABELS,
    ClaimSpec,
)
from gpupool.model.mig import parse_profile
from gpupool.model.units import parse_percent
from gpupool.model.wire_types import (
    MIG_PROFILE_PATTERN,
    ClaimMemoryValue,
    Labels,
    PercentValue,
    WholeNumber,
    parse_claim_memory,
)

TENANT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
USER_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")


class ClaimCreate(BaseModel):
    """Body of POST /v1/claims. Sizes are per GPU; omit memory and compute for whole GPUs."""

    model_config = ConfigDict(extra="forbid", strict=True)

    gpus: WholeNumber = Field(1, ge=1, le=MAX_GPUS_PER_CLAIM, description="number of vGPUs, all on one node")
    memory: ClaimMemoryValue = Field(
        None, description='memory per vGPU: "10GiB" (binary), "10GB" (decimal) or an integer of bytes'
    )
    compute: PercentValue = Field(None, description="share of SMs per vGPU, percent 1..100")
    model: str | None = Field(None, max_length=128, description='device model pattern, e.g. "H100*"')
    mig: str | None = Field(
        None,
        max_length=32,
        json_schema_extra={"pattern": MIG_PROFILE_PATTERN},
        description='a whole MIG instance of this profile, e.g. "1g.10gb" (model then names the parent)',
    )
    priority: WholeNumber = Field(0, ge=-1000, le=1000)
    preemptible: bool = False
    wait: bool = Field(False, description="accepted for compatibility; claims always queue")
    labels: Labels = Field(
        default_factory=dict,
        description=f"free-form notes: at most {MAX_LABELS}, keys 1..{MAX_LABEL_KEY_CHARS} and values "
        f"up to {MAX_LABEL_VALUE_CHARS} characters",
    )
    lease_ttl_s: float | None = Field(
        None,
        ge=1,
        le=86400,
        description="take a lease with the claim (same transaction): reclaimed unless renewed within",
    )

    @field_validator("mig")
    @classmethod
    def _mig(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.fullmatch(MIG_PROFILE_PATTERN, value):
            raise ValueError(f"expected a MIG profile like 1g.10gb or 3g.40gb, got {value[:40]!r}")
        return parse_profile(value)

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


class Page(BaseModel):
    """What every list answer says besides its items: whether there is more, and where it starts."""

    next_cursor: str | None = Field(None, description="pass as `cursor` to get the next page")
    has_more: bool = Field(False, description="more items follow this page")


class DeviceList(Page):
    items: list[DevicePublic]


class ClaimList(Page):
    items: list[ClaimPublic]


class EventPublic(BaseModel):
    id: int
    timestamp: float
    actor: str
    action: str
    claim_id: str | None = None
    tenant: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


class EventList(Page):
    """Events oldest first. `next_cursor` is the id to follow the trail from (also when nothing is
    waiting yet, so a client can poll with it); `has_more` says more are waiting now."""

    items: list[EventPublic]


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[
        str,
        Field(
            min_length=1,
            max_length=63,
            json_schema_extra={"pattern": TENANT_NAME_RE.pattern, "not": {"const": "admin"}},
            description="lowercase letters, digits, '-', '_' or '.'; not 'admin'",
        ),
    ]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not TENANT_NAME_RE.fullmatch(value) or value == "admin":
            raise ValueError(
                "must be lowercase letters, digits, '-', '_' or '.', start with a letter or digit, "
                "and not be 'admin'"
            )
        return value


class TenantCreated(BaseModel):
    name: str
    token: str


class TenantDeleted(BaseModel):
    name: str
    released: list[str] = Field(description="ids of the active claims released with the tenant")


class TenantPublic(BaseModel):
    name: str
    created_at: float
    run_as: str | None = Field(None, description="OS user its detached workloads run as (admin view)")


class TenantUpdate(BaseModel):
    """Body of PATCH /v1/tenants/{name} (admin)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    run_as: str | None = Field(
        ...,
        max_length=32,
        json_schema_extra={"pattern": USER_NAME_RE.pattern},
        description="OS user the node agent runs this tenant's detached workloads as; null removes it",
    )

    @field_validator("run_as")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and not USER_NAME_RE.fullmatch(value):
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
