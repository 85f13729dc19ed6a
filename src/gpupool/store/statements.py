"""Statements of the claim path, built once: SQLAlchemy then finds their compiled form in its cache
by a key memoized on the statement, instead of building and hashing a new statement per call."""

from __future__ import annotations

from sqlalchemy import and_, bindparam, insert, select, update

from gpupool.model import ClaimState
from gpupool.store import schema

ACTIVE_STATES = (ClaimState.PENDING.value, ClaimState.BOUND.value)
_claims, _bindings, _devices, _events = schema.claims, schema.bindings, schema.devices, schema.events
INSERT_CLAIM = insert(_claims)
INSERT_BINDINGS = insert(_bindings)
INSERT_EVENTS = insert(_events)
INSERT_LEASE = insert(schema.leases)
SELECT_CLAIM = select(_claims).where(_claims.c.id == bindparam("c_id"))
SELECT_BINDINGS = (
    select(_bindings)
    .where(_bindings.c.claim_id.in_(bindparam("c_ids", expanding=True)))
    .order_by(_bindings.c.id)
)
# Charge a device only if it stays within its memory and 100 % compute: the invariant's guard.
CHARGE_DEVICE = (
    update(_devices)
    .where(
        and_(
            _devices.c.uuid == bindparam("d_uuid"),
            _devices.c.present.is_(True),
            _devices.c.allocated_memory_bytes + bindparam("d_memory") <= _devices.c.memory_total_bytes,
            _devices.c.allocated_compute_percent + bindparam("d_compute") <= 100,
        )
    )
    .values(
        allocated_memory_bytes=_devices.c.allocated_memory_bytes + bindparam("d_memory"),
        allocated_compute_percent=_devices.c.allocated_compute_percent + bindparam("d_compute"),
    )
)
FREE_DEVICE = (
    update(_devices)
    .where(_devices.c.uuid == bindparam("d_uuid"))
    .values(
        allocated_memory_bytes=_devices.c.allocated_memory_bytes - bindparam("d_memory"),
        allocated_compute_percent=_devices.c.allocated_compute_percent - bindparam("d_compute"),
    )
)
BIND_CLAIM = (
    update(_claims)
    .where(and_(_claims.c.id == bindparam("c_id"), _claims.c.state == ClaimState.PENDING.value))
    .values(
        state=ClaimState.BOUND.value, reason="", updated_at=bindparam("c_now"), bound_at=bindparam("c_now")
    )
)
END_CLAIM = (
    update(_claims)
    .where(and_(_claims.c.id == bindparam("c_id"), _claims.c.state.in_(ACTIVE_STATES)))
    .values(
        state=bindparam("c_state"),
        reason=bindparam("c_reason"),
        updated_at=bindparam("c_now"),
        ended_at=bindparam("c_now"),
    )
)
# Frees the claim's bindings and says what they held, so the devices are credited exactly that.
END_BINDINGS = (
    update(_bindings)
    .where(and_(_bindings.c.claim_id == bindparam("c_id"), _bindings.c.active.is_(True)))
    .values(active=False)
    .returning(_bindings.c.device_uuid, _bindings.c.memory_bytes, _bindings.c.compute_percent)
)
MARK_PREEMPTING = (
    update(_claims)
    .where(
        and_(
            _claims.c.id == bindparam("c_id"),
            _claims.c.state == ClaimState.BOUND.value,
            _claims.c.preempt_deadline.is_(None),
        )
    )
    .values(
        preempt_deadline=bindparam("c_deadline"), reason=bindparam("c_reason"), updated_at=bindparam("c_now")
    )
)
SET_PENDING_REASON = (
    update(_claims)
    .where(
        and_(
            _claims.c.id == bindparam("c_id"),
            _claims.c.state == ClaimState.PENDING.value,
            _claims.c.reason != bindparam("c_reason"),
        )
    )
    .values(reason=bindparam("c_reason"))
)
