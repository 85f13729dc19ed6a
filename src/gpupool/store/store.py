"""The durable store: every claim/binding change is one transaction, committed before it returns.

The no-over-commit invariant (per device: bound memory <= total, bound compute <= 100) is enforced
inside the bind transaction by guarded UPDATEs of the device's running totals, so it holds with
several API processes writing at once and after any crash.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from gpupool.errors import CapacityError, Conflict, NotFound, StoreUnavailable
from gpupool.model import Binding, Claim, ClaimSpec, ClaimState, Device, Event, Tenant
from gpupool.model.idempotency import IdempotencyKey
from gpupool.store import migrate, schema
from gpupool.store.engine import make_engine

ACTIVE_STATES = (ClaimState.PENDING.value, ClaimState.BOUND.value)


def new_claim_id() -> str:
    return "c-" + secrets.token_hex(6)


class Store:
    def __init__(self, path_or_url: str | Path) -> None:
        self.shown = _shown(path_or_url)  # for people: the path, or the URL without its password
        try:
            self.engine = make_engine(path_or_url)
            migrate.upgrade(self.engine)  # every database runs at the newest schema
        except (OSError, SQLAlchemyError) as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise StoreUnavailable(f"db: cannot open {_shown(path_or_url)}: {reason}") from exc
        # One writer at a time inside this process: SQLite would otherwise resolve contention with
        # its sleeping busy handler (tens of ms per collision). Other processes are kept honest by
        # the database's own locks and the guarded UPDATEs.
        self._write_lock = threading.Lock()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction, committed when the block ends and rolled back on any exception."""
        with self._write_lock, self.engine.connect() as conn:
            conn.execution_options(gpupool_write=True)
            with conn.begin():
                yield conn

    def close(self) -> None:
        self.engine.dispose()

    # ----------------------------------------------------------------- devices
    def sync_devices(
        self, found: Sequence[Device], nodes: Iterable[str] | None = None, now: float | None = None
    ) -> list[Device]:
        """Record the devices seen now; return the known devices of `nodes` that are no longer there.

        `nodes` are the nodes this caller speaks for (default: those of `found`): a device of any
        other node (another replica's host) is never marked gone. Active bindings on a device that
        is back lose their `missing` flag, with a `binding.restored` event.
        """
        now = time.time() if now is None else now
        found_by_uuid = {device.uuid: device for device in found}
        authoritative = {d.node for d in found} if nodes is None else set(nodes) | {d.node for d in found}
        with self._write() as conn:
            known = {row.uuid: row for row in conn.execute(select(schema.devices))}
            for device in found:
                values = {
                    "node": device.node,
                    "device_index": device.index,
                    "model": device.model,
                    "memory_total_bytes": device.memory_total_bytes,
                    "sm_count": device.sm_count,
                    "present": True,
                    "last_seen": now,
                }
                if device.uuid in known:
                    conn.execute(update(schema.devices).where(schema.devices.c.uuid == device.uuid), values)
                else:
                    conn.execute(
                        insert(schema.devices),
                        {
                            **values,
                            "uuid": device.uuid,
                            "allocated_memory_bytes": 0,
                            "allocated_compute_percent": 0,
                        },
                    )
            vanished = [
                row
                for uuid, row in known.items()
                if uuid not in found_by_uuid and row.present and row.node in authoritative
            ]
            for row in vanished:
                conn.execute(
                    update(schema.devices).where(schema.devices.c.uuid == row.uuid).values(present=False)
                )
            self._restore_bindings(conn, list(found_by_uuid))
            self._recount_allocations(conn)
        return [_device_from_row(row) for row in vanished]

    def _restore_bindings(self, conn: Connection, present_uuids: list[str]) -> None:
        """Clear `missing` on active bindings whose device is present again (one event per claim)."""
        missing = schema.bindings.c.missing.is_(True)
        active = schema.bindings.c.active.is_(True)
        rows = conn.execute(
            select(schema.bindings.c.claim_id, schema.bindings.c.device_uuid).where(
                and_(missing, active, schema.bindings.c.device_uuid.in_(present_uuids))
            )
        ).all()
        if not rows:
            return
        conn.execute(
            update(schema.bindings)
            .where(and_(missing, active, schema.bindings.c.device_uuid.in_(present_uuids)))
            .values(missing=False)
        )
        for claim_id in sorted({row.claim_id for row in rows}):
            devices = sorted(row.device_uuid for row in rows if row.claim_id == claim_id)
            tenant = conn.execute(
                select(schema.claims.c.tenant).where(schema.claims.c.id == claim_id)
            ).scalar_one()
            self._event(conn, "pool", "binding.restored", claim_id, tenant, {"devices": devices})

    def device_allocations(self) -> dict[str, tuple[int, int]]:
        """Bound (memory bytes, compute percent) per present device UUID."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(
                    schema.devices.c.uuid,
                    schema.devices.c.allocated_memory_bytes,
                    schema.devices.c.allocated_compute_percent,
                ).where(schema.devices.c.present.is_(True))
            )
            return {row.uuid: (int(row[1]), int(row[2])) for row in rows}

    def _recount_allocations(self, conn: Connection) -> None:
        """Recompute running totals from active bindings (start-up repair; cheap, exact)."""
        totals = conn.execute(
            select(
                schema.bindings.c.device_uuid,
                func.sum(schema.bindings.c.memory_bytes),
                func.sum(schema.bindings.c.compute_percent),
            )
            .where(schema.bindings.c.active.is_(True))
            .group_by(schema.bindings.c.device_uuid)
        ).all()
        conn.execute(update(schema.devices).values(allocated_memory_bytes=0, allocated_compute_percent=0))
        for uuid, memory, compute in totals:
            conn.execute(
                update(schema.devices)
                .where(schema.devices.c.uuid == uuid)
                .values(allocated_memory_bytes=int(memory or 0), allocated_compute_percent=int(compute or 0))
            )

    def mark_missing_bindings(self, vanished_uuids: Iterable[str], actor: str = "pool") -> list[Claim]:
        """Flag active bindings on vanished devices (never dropped silently); return their claims."""
        uuids = list(vanished_uuids)
        if not uuids:
            return []
        with self._write() as conn:
            rows = conn.execute(
                select(schema.bindings.c.claim_id, schema.bindings.c.device_uuid).where(
                    and_(schema.bindings.c.device_uuid.in_(uuids), schema.bindings.c.active.is_(True))
                )
            ).all()
            claim_ids = sorted({row.claim_id for row in rows})
            conn.execute(
                update(schema.bindings)
                .where(and_(schema.bindings.c.device_uuid.in_(uuids), schema.bindings.c.active.is_(True)))
                .values(missing=True)
            )
            for claim_id in claim_ids:
                devices = sorted(row.device_uuid for row in rows if row.claim_id == claim_id)
                tenant = conn.execute(
                    select(schema.claims.c.tenant).where(schema.claims.c.id == claim_id)
                ).scalar_one()
                self._event(conn, actor, "binding.missing", claim_id, tenant, {"devices": devices})
            return [self._claim(conn, claim_id) for claim_id in claim_ids]

    # ------------------------------------------------------------------ claims
    def add_claim(
        self,
        tenant: str,
        spec: ClaimSpec,
        reason: str,
        actor: str,
        placement: Sequence[Binding] = (),
        lease_ttl_s: float | None = None,
        idempotency: IdempotencyKey | None = None,
    ) -> Claim:
        """Record a new claim and its events in one transaction: bound to `placement` when one is
        given (CapacityError and nothing recorded if it no longer fits), else pending.

        With `lease_ttl_s`, the claim's lease (now + ttl seconds) is taken in the same transaction,
        so a client that dies right after the answer still leaves a claim that will be reclaimed.
        With `idempotency`, the key is stored with the claim; when the tenant already has a claim
        under that key, that claim is returned and nothing is recorded (Conflict if it was made by a
        different request).
        """
        try:
            return self._add_claim(tenant, spec, reason, actor, placement, lease_ttl_s, idempotency)
        except IntegrityError:
            # Another process recorded the same key between our check and our insert.
            if idempotency is None:
                raise
            replayed = self.claim_for_key(tenant, idempotency)
            if replayed is None:
                raise
            return replayed

    def claim_for_key(self, tenant: str, idempotency: IdempotencyKey) -> Claim | None:
        """The tenant's claim made under this key, None if there is none; Conflict when the key was
        used for a different request."""
        with self.engine.connect() as conn:
            return self._claim_for_key(conn, tenant, idempotency)

    def _claim_for_key(self, conn: Connection, tenant: str, idempotency: IdempotencyKey) -> Claim | None:
        row = conn.execute(
            select(schema.claims).where(
                and_(schema.claims.c.tenant == tenant, schema.claims.c.idempotency_key == idempotency.key)
            )
        ).first()
        if row is None:
            return None
        if row.request_hash != idempotency.request_hash:
            raise Conflict(
                f"Idempotency-Key: {idempotency.key!r} was already used for a different claim ({row.id}); "
                "use a new key for a new request"
            )
        return self._claims_with_bindings(conn, [row])[0]

    def _add_claim(
        self,
        tenant: str,
        spec: ClaimSpec,
        reason: str,
        actor: str,
        placement: Sequence[Binding],
        lease_ttl_s: float | None,
        idempotency: IdempotencyKey | None,
    ) -> Claim:
        now = time.time()
        claim_id = new_claim_id()
        with self._write() as conn:
            if idempotency is not None:
                replayed = self._claim_for_key(conn, tenant, idempotency)
                if replayed is not None:
                    return replayed
            conn.execute(
                insert(schema.claims),
                {
                    "id": claim_id,
                    "tenant": tenant,
                    "gpus": spec.gpus,
                    "memory_bytes": spec.memory_bytes,
                    "compute_percent": spec.compute_percent,
                    "model": spec.model,
                    "priority": spec.priority,
                    "preemptible": spec.preemptible,
                    "labels": dict(spec.labels),
                    "mig": spec.mig,
                    "state": ClaimState.BOUND.value if placement else ClaimState.PENDING.value,
                    "reason": "" if placement else reason,
                    "created_at": now,
                    "updated_at": now,
                    "bound_at": now if placement else None,
                    "idempotency_key": None if idempotency is None else idempotency.key,
                    "request_hash": None if idempotency is None else idempotency.request_hash,
                },
            )
            self._event(conn, actor, "claim.created", claim_id, tenant, _spec_details(spec))
            if placement:
                self._insert_bindings(conn, claim_id, placement)
                devices = [b.device_uuid for b in placement]
                self._event(conn, "scheduler", "claim.bound", claim_id, tenant, {"devices": devices})
            if lease_ttl_s is not None:
                conn.execute(
                    insert(schema.leases),
                    {"claim_id": claim_id, "ttl_s": lease_ttl_s, "expires_at": now + lease_ttl_s},
                )
            return self._claim(conn, claim_id)

    def bind_claim(self, claim_id: str, placement: Sequence[Binding], actor: str = "scheduler") -> Claim:
        """Bind a pending claim to all its devices at once, or change nothing.

        Raises CapacityError if any device would be over-committed, Conflict if the claim is no
        longer pending (another worker got there first, or it was released meanwhile).
        """
        now = time.time()
        with self._write() as conn:
            result = conn.execute(
                update(schema.claims)
                .where(
                    and_(schema.claims.c.id == claim_id, schema.claims.c.state == ClaimState.PENDING.value)
                )
                .values(state=ClaimState.BOUND.value, reason="", updated_at=now, bound_at=now)
            )
            if result.rowcount != 1:
                raise Conflict(f"claim {claim_id} is not pending")
            self._insert_bindings(conn, claim_id, placement)
            claim = self._claim(conn, claim_id)
            self._event(
                conn,
                actor,
                "claim.bound",
                claim_id,
                claim.tenant,
                {"devices": [b.device_uuid for b in placement]},
            )
            return claim

    def _insert_bindings(self, conn: Connection, claim_id: str, placement: Sequence[Binding]) -> None:
        """Add bindings and charge their devices, refusing (CapacityError) any over-commit."""
        for binding in placement:
            guarded = conn.execute(
                update(schema.devices)
                .where(
                    and_(
                        schema.devices.c.uuid == binding.device_uuid,
                        schema.devices.c.present.is_(True),
                        schema.devices.c.allocated_memory_bytes + binding.memory_bytes
                        <= schema.devices.c.memory_total_bytes,
                        schema.devices.c.allocated_compute_percent + binding.compute_percent <= 100,
                    )
                )
                .values(
                    allocated_memory_bytes=schema.devices.c.allocated_memory_bytes + binding.memory_bytes,
                    allocated_compute_percent=schema.devices.c.allocated_compute_percent
                    + binding.compute_percent,
                )
            )
            if guarded.rowcount != 1:
                # Leaving the `with` block by exception rolls back every UPDATE above.
                raise CapacityError(f"device {binding.device_uuid} cannot take this binding any more")
            conn.execute(
                insert(schema.bindings),
                {
                    "claim_id": claim_id,
                    "device_uuid": binding.device_uuid,
                    "node": binding.node,
                    "device_index": binding.device_index,
                    "memory_bytes": binding.memory_bytes,
                    "compute_percent": binding.compute_percent,
                    "whole_device": binding.whole_device,
                    "active": True,
                    "missing": False,
                },
            )

    def end_claim(
        self,
        claim_id: str,
        state: ClaimState = ClaimState.RELEASED,
        actor: str = "pool",
        reason: str = "",
        owner: str | None = None,
    ) -> Claim:
        """Move an active claim to a final state and free its devices; idempotent on ended claims.

        With `owner`, a claim of another tenant is reported as not found (and left alone). A
        preempting claim that is released (by its owner, its agent or a lease) ends as `preempted`
        with its preemption reason; the release reason goes into the event as `stopped`.
        """
        with self._write() as conn:
            claim = self._claim(conn, claim_id)
            if owner is not None and claim.tenant != owner:
                raise NotFound(f"claim {claim_id} not found")
            return self._end_claim(conn, claim, state, actor, reason)

    def _end_claim(self, conn: Connection, claim: Claim, state: ClaimState, actor: str, reason: str) -> Claim:
        """`end_claim` inside an open write transaction."""
        if not claim.state.is_active:
            return claim
        now = time.time()
        details: dict[str, Any] = {}
        if claim.preempting and state in (ClaimState.RELEASED, ClaimState.PREEMPTED):
            if reason and reason != claim.reason:
                details["stopped"] = reason
            state, reason = ClaimState.PREEMPTED, claim.reason
        result = conn.execute(
            update(schema.claims)
            .where(and_(schema.claims.c.id == claim.id, schema.claims.c.state.in_(ACTIVE_STATES)))
            .values(state=state.value, reason=reason, updated_at=now, ended_at=now)
        )
        if result.rowcount != 1:
            return self._claim(conn, claim.id)
        self._free_bindings(conn, claim.id)
        action = "claim.released" if state == ClaimState.RELEASED else f"claim.{state.value}"
        if reason:
            details = {"reason": reason, **details}
        self._event(conn, actor, action, claim.id, claim.tenant, details)
        return self._claim(conn, claim.id)

    def mark_preempting(
        self, claim_id: str, deadline: float, reason: str, actor: str = "scheduler", **details: Any
    ) -> Claim | None:
        """Start the grace period of a bound claim: it keeps its devices until it ends, by `deadline`
        (epoch seconds). Returns the claim, or None if it is not bound or already preempting."""
        with self._write() as conn:
            result = conn.execute(
                update(schema.claims)
                .where(
                    and_(
                        schema.claims.c.id == claim_id,
                        schema.claims.c.state == ClaimState.BOUND.value,
                        schema.claims.c.preempt_deadline.is_(None),
                    )
                )
                .values(preempt_deadline=deadline, reason=reason, updated_at=time.time())
            )
            if result.rowcount != 1:
                return None
            claim = self._claim(conn, claim_id)
            event = {"reason": reason, "deadline": deadline, **details}
            self._event(conn, actor, "claim.preempting", claim_id, claim.tenant, event)
            return claim

    def preempting_claims(self) -> list[Claim]:
        """Bound claims in their preemption grace period, earliest deadline first."""
        query = (
            select(schema.claims)
            .where(
                and_(
                    schema.claims.c.state == ClaimState.BOUND.value,
                    schema.claims.c.preempt_deadline.is_not(None),
                )
            )
            .order_by(schema.claims.c.preempt_deadline.asc())
        )
        with self.engine.connect() as conn:
            return self._claims_with_bindings(conn, conn.execute(query).all())

    def set_pending_reason(self, claim_id: str, reason: str) -> None:
        """Update the human reason of a pending claim (no event: it changes on every pass)."""
        with self._write() as conn:
            conn.execute(
                update(schema.claims)
                .where(
                    and_(
                        schema.claims.c.id == claim_id,
                        schema.claims.c.state == ClaimState.PENDING.value,
                        schema.claims.c.reason != reason,
                    )
                )
                .values(reason=reason)
            )

    def _free_bindings(self, conn: Connection, claim_id: str) -> None:
        active = conn.execute(
            select(schema.bindings).where(
                and_(schema.bindings.c.claim_id == claim_id, schema.bindings.c.active.is_(True))
            )
        ).all()
        for row in active:
            conn.execute(
                update(schema.devices)
                .where(schema.devices.c.uuid == row.device_uuid)
                .values(
                    allocated_memory_bytes=schema.devices.c.allocated_memory_bytes - row.memory_bytes,
                    allocated_compute_percent=schema.devices.c.allocated_compute_percent
                    - row.compute_percent,
                )
            )
        conn.execute(
            update(schema.bindings)
            .where(and_(schema.bindings.c.claim_id == claim_id, schema.bindings.c.active.is_(True)))
            .values(active=False)
        )

    def get_claim(self, claim_id: str) -> Claim:
        with self.engine.connect() as conn:
            return self._claim(conn, claim_id)

    def list_claims(
        self,
        tenant: str | None = None,
        states: Iterable[ClaimState] | None = None,
        limit: int = 1000,
        id_prefix: str | None = None,
    ) -> list[Claim]:
        """Claims newest first (pending ones in queue order when only pending are asked for)."""
        query = select(schema.claims)
        if tenant is not None:
            query = query.where(schema.claims.c.tenant == tenant)
        if id_prefix is not None:  # `%` and `_` in the prefix are literal characters
            query = query.where(schema.claims.c.id.startswith(id_prefix, autoescape=True))
        if states is not None:
            query = query.where(schema.claims.c.state.in_([s.value for s in states]))
        query = query.order_by(schema.claims.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            return self._claims_with_bindings(conn, rows)

    def list_claims_page(
        self,
        tenant: str | None = None,
        states: Iterable[ClaimState] | None = None,
        limit: int = 500,
        before_seq: int | None = None,
        id_prefix: str | None = None,
    ) -> tuple[list[Claim], int | None]:
        """One page of claims, newest first, and the arrival number to continue from (None when
        this page holds the oldest)."""
        query = select(schema.claims)
        if tenant is not None:
            query = query.where(schema.claims.c.tenant == tenant)
        if states is not None:
            query = query.where(schema.claims.c.state.in_([s.value for s in states]))
        if id_prefix is not None:  # `%` and `_` in the prefix are literal characters
            query = query.where(schema.claims.c.id.startswith(id_prefix, autoescape=True))
        if before_seq is not None:
            query = query.where(schema.claims.c.seq < before_seq)
        query = query.order_by(schema.claims.c.seq.desc()).limit(limit + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            page = self._claims_with_bindings(conn, rows[:limit])
        return page, (int(rows[limit - 1].seq) if len(rows) > limit else None)

    def count_pending(self, min_priority: int | None = None) -> int:
        """How many claims wait, optionally only those at or above a priority (queued ahead)."""
        query = (
            select(func.count())
            .select_from(schema.claims)
            .where(schema.claims.c.state == ClaimState.PENDING.value)
        )
        if min_priority is not None:
            query = query.where(schema.claims.c.priority >= min_priority)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def pending_claims(self) -> list[Claim]:
        """Pending claims in queue order: higher priority first, then arrival (FIFO)."""
        query = (
            select(schema.claims)
            .where(schema.claims.c.state == ClaimState.PENDING.value)
            .order_by(schema.claims.c.priority.desc(), schema.claims.c.seq.asc())
        )
        with self.engine.connect() as conn:
            return self._claims_with_bindings(conn, conn.execute(query).all())

    def _claim(self, conn: Connection, claim_id: str) -> Claim:
        row = conn.execute(select(schema.claims).where(schema.claims.c.id == claim_id)).first()
        if row is None:
            raise NotFound(f"claim {claim_id} not found")
        return self._claims_with_bindings(conn, [row])[0]

    def _claims_with_bindings(self, conn: Connection, rows: Sequence[Row[Any]]) -> list[Claim]:
        if not rows:
            return []
        ids = [row.id for row in rows]
        by_claim: dict[str, list[Binding]] = {claim_id: [] for claim_id in ids}
        binding_rows = conn.execute(
            select(schema.bindings).where(schema.bindings.c.claim_id.in_(ids)).order_by(schema.bindings.c.id)
        ).all()
        for b in binding_rows:
            by_claim[b.claim_id].append(
                Binding(
                    device_uuid=b.device_uuid,
                    node=b.node,
                    memory_bytes=int(b.memory_bytes),
                    compute_percent=int(b.compute_percent),
                    device_index=b.device_index,
                    whole_device=bool(b.whole_device),
                    missing=bool(b.missing),
                )
            )
        return [_claim_from_row(row, by_claim[row.id]) for row in rows]

    # ----------------------------------------------------------------- tenants
    def create_tenant(self, name: str, token_hash: str, actor: str = "admin") -> Tenant:
        now = time.time()
        with self._write() as conn:
            exists = conn.execute(select(schema.tenants.c.name).where(schema.tenants.c.name == name)).first()
            if exists is not None:
                raise Conflict(f"tenant {name!r} already exists")
            conn.execute(insert(schema.tenants), {"name": name, "token_hash": token_hash, "created_at": now})
            self._event(conn, actor, "tenant.created", None, name, {"tenant": name})
        return Tenant(name=name, created_at=now)

    def tenant_by_token_hash(self, token_hash: str) -> Tenant | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(schema.tenants).where(schema.tenants.c.token_hash == token_hash)
            ).first()
        return None if row is None else _tenant_from_row(row)

    def tenant_with_token_hash(self, name: str) -> tuple[Tenant, str] | None:
        """A tenant and its current token hash (None when there is no such tenant)."""
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.tenants).where(schema.tenants.c.name == name)).first()
        return None if row is None else (_tenant_from_row(row), str(row.token_hash))

    def rotate_token(self, name: str, token_hash: str, actor: str = "admin") -> None:
        """Replace a tenant's token hash: the old token stops working with this commit."""
        self._update_tenant(name, {"token_hash": token_hash}, actor, "tenant.token_rotated", {"tenant": name})

    def delete_tenant(self, name: str, actor: str = "admin") -> list[Claim]:
        """Remove a tenant in one transaction: its token dies, its active claims are released (their
        devices freed), its quota and idle setting go. Ended claims stay in the audit trail.
        Returns the claims it released."""
        with self._write() as conn:
            result = conn.execute(delete(schema.tenants).where(schema.tenants.c.name == name))
            if result.rowcount != 1:
                raise NotFound(f"tenant {name!r} not found")
            active = conn.execute(
                select(schema.claims)
                .where(and_(schema.claims.c.tenant == name, schema.claims.c.state.in_(ACTIVE_STATES)))
                .order_by(schema.claims.c.seq)
            ).all()
            released = [
                self._end_claim(conn, claim, ClaimState.RELEASED, actor, "tenant deleted")
                for claim in self._claims_with_bindings(conn, active)
            ]
            for table in (schema.quotas, schema.tenant_idle):
                conn.execute(delete(table).where(table.c.tenant == name))
            details = {"tenant": name, "released": [c.id for c in released]}
            self._event(conn, actor, "tenant.deleted", None, name, details)
        return released

    def list_tenants(self) -> list[Tenant]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(schema.tenants).order_by(schema.tenants.c.name)).all()
        return [_tenant_from_row(row) for row in rows]

    def get_tenant(self, name: str) -> Tenant:
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.tenants).where(schema.tenants.c.name == name)).first()
        if row is None:
            raise NotFound(f"tenant {name!r} not found")
        return _tenant_from_row(row)

    def set_run_as(self, name: str, user: str | None, actor: str) -> Tenant:
        """Map a tenant to the OS user its detached workloads run as (None removes the mapping)."""
        self._update_tenant(name, {"run_as": user}, actor, "tenant.run_as", {"run_as": user})
        return self.get_tenant(name)

    def _update_tenant(
        self, name: str, values: dict[str, Any], actor: str, action: str, details: dict[str, Any]
    ) -> None:
        """Change a tenant's row and log why, in one transaction (NotFound for an unknown name)."""
        with self._write() as conn:
            found = conn.execute(update(schema.tenants).where(schema.tenants.c.name == name).values(**values))
            if found.rowcount != 1:
                raise NotFound(f"tenant {name!r} not found")
            self._event(conn, actor, action, None, name, details)

    # ------------------------------------------------------------------ events
    def add_event(
        self,
        actor: str,
        action: str,
        claim_id: str | None = None,
        tenant: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        with self._write() as conn:
            self._event(conn, actor, action, claim_id, tenant, details or {})

    def list_events(
        self,
        tenant: str | None = None,
        claim_id: str | None = None,
        after_id: int = 0,
        limit: int = 200,
    ) -> list[Event]:
        """Events oldest first after `after_id` (use the last id seen to follow the trail)."""
        query = select(schema.events).where(schema.events.c.id > after_id)
        if tenant is not None:
            query = query.where(schema.events.c.tenant == tenant)
        if claim_id is not None:
            query = query.where(schema.events.c.claim_id == claim_id)
        # Without a cursor the newest `limit` events are the useful ones; with one, the next ones.
        newest_first = after_id == 0
        order = schema.events.c.id.desc() if newest_first else schema.events.c.id.asc()
        with self.engine.connect() as conn:
            rows = list(conn.execute(query.order_by(order).limit(limit)).all())
        if newest_first:
            rows.reverse()
        return [
            Event(
                id=row.id,
                timestamp=row.timestamp,
                actor=row.actor,
                action=row.action,
                claim_id=row.claim_id,
                tenant=row.tenant,
                details=dict(row.details or {}),
            )
            for row in rows
        ]

    @staticmethod
    def _event(
        conn: Connection,
        actor: str,
        action: str,
        claim_id: str | None,
        tenant: str | None,
        details: dict[str, Any],
    ) -> None:
        conn.execute(
            insert(schema.events),
            {
                "timestamp": time.time(),
                "actor": actor,
                "action": action,
                "claim_id": claim_id,
                "tenant": tenant,
                "details": details,
            },
        )


def _spec_details(spec: ClaimSpec) -> dict[str, Any]:
    return {
        "gpus": spec.gpus,
        "memory_bytes": spec.memory_bytes,
        "compute_percent": spec.compute_percent,
        "model": spec.model,
        "priority": spec.priority,
        **({"mig": spec.mig} if spec.mig else {}),
    }


def _claim_from_row(row: Row[Any], claim_bindings: list[Binding]) -> Claim:
    spec = ClaimSpec(
        gpus=row.gpus,
        memory_bytes=None if row.memory_bytes is None else int(row.memory_bytes),
        compute_percent=row.compute_percent,
        model=row.model,
        priority=row.priority,
        preemptible=bool(row.preemptible),
        labels=dict(row.labels or {}),
        mig=row.mig,
    )
    state = ClaimState(row.state)
    # Ended claims keep their bindings readable (what they had), active ones show only live ones.
    return Claim(
        id=row.id,
        tenant=row.tenant,
        spec=spec,
        state=state,
        reason=row.reason,
        bindings=tuple(claim_bindings),
        created_at=row.created_at,
        updated_at=row.updated_at,
        bound_at=row.bound_at,
        ended_at=row.ended_at,
        preempt_deadline=row.preempt_deadline,
    )


def _tenant_from_row(row: Row[Any]) -> Tenant:
    return Tenant(name=row.name, created_at=row.created_at, run_as=row.run_as)


def _device_from_row(row: Row[Any]) -> Device:
    return Device(
        uuid=row.uuid,
        node=row.node,
        index=row.device_index,
        model=row.model,
        memory_total_bytes=int(row.memory_total_bytes),
        sm_count=row.sm_count,
    )


def _shown(path_or_url: str | Path) -> str:
    """A database path or URL fit for a log line: never the password."""
    text = str(path_or_url)
    if "://" not in text:
        return text
    try:
        return make_url(text).render_as_string(hide_password=True)
    except ArgumentError:
        return text.split("://", 1)[0] + "://..."
