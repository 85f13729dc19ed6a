"""The dashboard's view of the pool (`GET /v1/overview`, `GET /v1/stream`), shared with the SDK.

One snapshot carries everything a management view draws: devices with what is bound to them,
the queue in order with its reasons, tenants with quota and usage, and the newest events.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from gpupool.model.wire import ClaimPublic, DeviceSummary, EventPublic


class Segment(BaseModel):
    """One claim's share of one device. Another tenant's claim shows as tenant `other`, no id."""

    claim_id: str
    tenant: str
    memory_bytes: int
    compute_percent: int
    holder: str | None = Field(None, description="the VM (libvirt domain) holding this share, if any")


class DeviceCard(DeviceSummary):
    segments: list[Segment] = Field(default_factory=list)


class TenantRow(BaseModel):
    """A tenant's quota (None: not set) and what it holds and waits for (GPU-equivalents, bytes)."""

    name: str
    guarantee_gpus: float | None = None
    limit_gpus: float | None = None
    guarantee_memory_bytes: int | None = None
    limit_memory_bytes: int | None = None
    allocated_gpus: float = 0.0
    allocated_memory_bytes: int = 0
    allocated_compute_percent: int = 0
    bound_claims: int = 0
    pending_claims: int = 0
    colour: int = Field(
        -1, description="colour slot: the tenant's rank by creation (-1: the admin), so colours never repeat"
    )


class Overview(BaseModel):
    generated_at: float
    viewer: str
    admin: bool
    backend: str
    policy: str
    devices: list[DeviceCard]
    claims: list[ClaimPublic] = Field(description="bound claims the viewer may see")
    queue: list[ClaimPublic] = Field(description="pending claims the viewer may see, in queue order")
    queue_length: int = Field(0, description="all pending claims, the viewer's or not")
    tenants: list[TenantRow]
    events: list[EventPublic]
    sample_id: int = Field(0, description="increases with each telemetry sample of the history")
    history_interval_s: float = 2.0
    history: dict[str, list[float]] | None = Field(
        None, description="utilization percent per device UUID, oldest first (asked for only)"
    )
