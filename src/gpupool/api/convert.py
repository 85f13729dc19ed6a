"""Domain objects -> wire schemas."""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic_core import to_json

from gpupool.isolation import launch_env
from gpupool.model import Claim, ClaimState, Event, Tenant
from gpupool.model.wire import ClaimPublic, DevicePublic, EventPublic
from gpupool.pool import DeviceView
from gpupool.pool.quota import quota_reason


def claim_public(claim: Claim, queue_position: int | None = None) -> ClaimPublic:
    return ClaimPublic.model_validate(claim_fields(claim, queue_position))


def claim_json(claim: Claim, queue_position: int | None = None) -> bytes:
    """`claim_public(...).model_dump_json()`, byte for byte, without building the model: the claim
    path answers every request with one (BENCHMARKS.md, issue 14). `claim_fields` already has
    ClaimPublic's field order and types, and `pydantic_core.to_json` is the serialiser
    `model_dump_json` uses (tests/unit/test_convert.py holds the two together)."""
    return to_json(claim_fields(claim, queue_position))


def claim_fields(claim: Claim, queue_position: int | None = None) -> dict[str, Any]:
    """A claim as the fields of `ClaimPublic`, in its order, each of its type (floats as floats)."""
    spec = claim.spec
    return {
        "id": claim.id,
        "tenant": claim.tenant,
        "state": claim.state.value,
        "reason": claim.reason,
        "gpus": spec.gpus,
        "memory_bytes": spec.memory_bytes,
        "compute_percent": spec.compute_percent,
        "model": spec.model,
        "mig": spec.mig,
        "priority": spec.priority,
        "preemptible": spec.preemptible,
        "labels": dict(spec.labels),
        "bindings": [
            {
                "device_uuid": b.device_uuid,
                "node": b.node,
                "device_index": b.device_index,
                "memory_bytes": b.memory_bytes,
                "compute_percent": b.compute_percent,
                "whole_device": b.whole_device,
                "missing": b.missing,
            }
            for b in claim.bindings
        ],
        "env": launch_env(claim) if claim.state == ClaimState.BOUND else {},
        "queue_position": queue_position,
        "quota_reason": quota_reason(claim),
        "created_at": float(claim.created_at),
        "updated_at": float(claim.updated_at),
        "bound_at": _float_or_none(claim.bound_at),
        "ended_at": _float_or_none(claim.ended_at),
        "preempt_deadline": _float_or_none(claim.preempt_deadline) if claim.preempting else None,
    }


def _float_or_none(value: float | None) -> float | None:
    return None if value is None else float(value)


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


def raw_json_response(content: bytes, status_code: int = 200) -> Response:
    """JSON already serialised (e.g. by `claim_json`)."""
    return Response(content, status_code=status_code, media_type="application/json")
