"""Domain objects -> wire schemas."""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel

from gpupool.isolation import launch_env
from gpupool.model import Claim, ClaimState, Event, Tenant
from gpupool.model.wire import BindingPublic, ClaimPublic, DevicePublic, EventPublic
from gpupool.pool import DeviceView
from gpupool.pool.quota import quota_reason


def claim_public(claim: Claim, queue_position: int | None = None) -> ClaimPublic:
    spec = claim.spec
    return ClaimPublic(
        id=claim.id,
        tenant=claim.tenant,
        state=claim.state.value,
        reason=claim.reason,
        gpus=spec.gpus,
        memory_bytes=spec.memory_bytes,
        compute_percent=spec.compute_percent,
        model=spec.model,
        mig=spec.mig,
        priority=spec.priority,
        preemptible=spec.preemptible,
        labels=dict(spec.labels),
        bindings=[
            BindingPublic(
                device_uuid=b.device_uuid,
                node=b.node,
                device_index=b.device_index,
                memory_bytes=b.memory_bytes,
                compute_percent=b.compute_percent,
                whole_device=b.whole_device,
                missing=b.missing,
            )
            for b in claim.bindings
        ],
        env=launch_env(claim) if claim.state == ClaimState.BOUND else {},
        queue_position=queue_position,
        quota_reason=quota_reason(claim),
        created_at=claim.created_at,
        updated_at=claim.updated_at,
        bound_at=claim.bound_at,
        ended_at=claim.ended_at,
        preempt_deadline=claim.preempt_deadline if claim.preempting else None,
    )


def device_public(view: DeviceView, viewer: Tenant) -> DevicePublic:
    """A device as `viewer` may see it: the admin sees every claim id on it, a tenant its own."""
    device = view.device
    return DevicePublic(
        uuid=device.uuid,
        node=device.node,
        index=device.index,
        model=device.model,
        memory_total_bytes=device.memory_total_bytes,
        memory_allocated_bytes=view.allocated_memory_bytes,
        compute_allocated_percent=view.allocated_compute_percent,
        memory_used_bytes=None if view.telemetry is None else view.telemetry.memory_used_bytes,
        utilization_percent=None if view.telemetry is None else view.telemetry.utilization_percent,
        sm_count=device.sm_count,
        mig_capable=device.mig_capable,
        mig_mode=device.mig_mode,
        parent_uuid=device.parent_uuid,
        schedulable=device.schedulable,
        nvlink_peers=list(device.nvlink_peers),
        claims=[
            claim_id
            for claim_id, owner in zip(view.claim_ids, view.claim_tenants, strict=True)
            if viewer.is_admin or owner == viewer.name
        ],
    )


def event_public(event: Event) -> EventPublic:
    return EventPublic.model_validate(event, from_attributes=True)


def json_response(model: BaseModel, status_code: int = 200) -> Response:
    """The model as JSON, serialised once; a route that returns it still declares its
    `response_model` for the schema (FastAPI would otherwise validate it again before writing)."""
    return Response(model.model_dump_json(), status_code=status_code, media_type="application/json")
