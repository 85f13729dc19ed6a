"""The durable store: every claim/binding change is one transaction, committed before it returns.

The no-over-commit invariant (per device: bound memory <= total, bound compute <= 100) is enforced
inside the bind transaction by guarded UPDATEs of the device's running totals, so it holds with
several API processes writing at once and after any crash.

Writes go through one writer thread that commits the transactions of concurrent callers together
(`gpupool.store.commit`); reads of the active part of the pool (pending and bound claims, device
totals, quotas) are served from the committed state kept in memory (`gpupool.store.state`), and
only history (ended claims, events) and tenants are read from the database.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row, Select, and_, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from gpupool.errors import CapacityError, Conflict, NotFound, StoreUnavailable
from gpupool.model import Binding, Claim, ClaimSpec, ClaimState, Device, Event, Tenant
from gpupool.model.idempotency import IdempotencyKey
from gpupool.model.quota import Quota
from gpupool.store import migrate, schema
from gpupool.store.commit import PLAIN, READ_GENERATION, STATE, GroupCommit, Listener, Tx
from gpupool.store.engine import make_engine
from gpupool.store.state import PoolState
from gpupool.store.statements import (
    ACTIVE_STATES,
    BIND_CLAIM,
    CHARGE_DEVICE,
    END_BINDINGS,
    END_CLAIM,
    FREE_DEVICE,
    INSERT_BINDING,
    INSERT_CLAIM,
    INSERT_EVENT,
    INSERT_LEASE,
    MARK_PREEMPTING,
    SET_PENDING_REASON,
    as_json,
    cursor_of,
    event_row,
    execute,
    paramstyle_of,
)

_claims, _bindings, _devices, _events = schema.claims, schema.bindings, schema.devices, schema.events
SELECT_CLAIM = select(_claims).where(_claims.c.id == bindparam("c_id"))
SELECT_BINDINGS = (
    select(_bindings)
    .where(_bindings.c.claim_id.in_(bindparam("c_ids", expanding=True)))
    .order_by(_bindings.c.id)
)


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
        self.state = PoolState()
        self._writer = GroupCommit(self.engine, self.state, self._load_state)
        self._writer.refresh_if_stale(force=True)  # the first load

    # ------------------------------------------------------------- plumbing
    def write(self, unit: Any, kind: str = STATE) -> Any:
        """Run `unit(tx)` in the writer's next transaction; its result once committed.

        A unit records what it changed of the pool state in `tx.changes`; `kind` is PLAIN for one
        that writes only other records."""
        return self._writer.run(unit, kind)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction of records the pool state does not hold (leases, workloads, tenants),
        committed when the block ends and rolled back on any exception."""
        with self._writer.exclusive() as conn:
            yield conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """A write transaction that may change anything (claims, devices, quotas) outside a unit:
        correct but slow (the in-memory state is reloaded whole after it); prefer `write(unit)`."""
        with self._writer.exclusive(touches_state=True) as conn:
            yield conn

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(changes)` after every commit that changed pool state (`None`: reloaded
        whole). It runs in the writer thread: it must be quick and must not wait for a lock that
        a caller of the store may hold."""
        self._writer.listeners.append(listener)

    def view(self) -> PoolState:
        """The committed pool state, current with the database: in a process that has seen another
        write to the same database, one small read checks that it still is."""
        if self._writer.shared:
            self._writer.refresh_if_stale()
        return self.state

    def refresh(self) -> bool:
        """Reload the pool state if another process changed the database; True if it did."""
        return self._writer.refresh_if_stale(force=True)

    def close(self) -> None:
        self._writer.close()
        self.engine.dispose()

    def _load_state(self, conn: Connection) -> PoolState:
        """The active part of the database as a `PoolState` (in the caller's transaction)."""
        generation = conn.execute(READ_GENERATION).scalar_one_or_none()
        rows = conn.execute(
            select(_claims).where(_claims.c.state.in_(ACTIVE_STATES)).order_by(_claims.c.seq)
        ).all()
        binding_rows = conn.execute(
            select(_bindings)
            .join(_claims, _claims.c.id == _bindings.c.claim_id)
            .where(_claims.c.state.in_(ACTIVE_STATES))
            .order_by(_bindings.c.id)
        ).all()
        by_claim: dict[str, list[Binding]] = {}
        for b in binding_rows:
            by_claim.setdefault(b.claim_id, []).append(_binding_from_row(b))
        allocations = {
            row.uuid: (int(row.allocated_memory_bytes), int(row.allocated_compute_percent))
            for row in conn.execute(
                select(
                    _devices.c.uuid, _devices.c.allocated_memory_bytes, _devices.c.allocated_compute_percent
                ).where(_devices.c.present.is_(True))
            )
        }
        quotas = {row.tenant: _quota_from_row(row) for row in conn.execute(select(schema.quotas))}
        claims = [_claim_from_row(row, by_claim.get(row.id, [])) for row in rows]
        return PoolState.of(int(generation or 0), claims, allocations, quotas)

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

        def unit(tx: Tx) -> list[Device]:
            conn = tx.conn
            known = {row.uuid: row for row in conn.execute(select(_devices))}
            seen = [
                {
                    "d_uuid": device.uuid,
                    "node": device.node,
                    "device_index": device.index,
                    "model": device.model,
                    "memory_total_bytes": device.memory_total_bytes,
                    "sm_count": device.sm_count,
                    "present": True,
                    "last_seen": now,
                }
                for device in found
            ]
            changed = [values for values in seen if values["d_uuid"] in known]
            if changed:
                conn.execute(
                    update(_devices).where(_devices.c.uuid == bindparam("d_uuid")),
                    changed,
                )
            added = [
                {**{k: v for k, v in values.items() if k != "d_uuid"}, "uuid": values["d_uuid"]}
                for values in seen
                if values["d_uuid"] not in known
            ]
            if added:
                conn.execute(
                    insert(_devices),
                    [
                        {**values, "allocated_memory_bytes": 0, "allocated_compute_percent": 0}
                        for values in added
                    ],
                )
            vanished = [
                row
                for uuid, row in known.items()
                if uuid not in found_by_uuid and row.present and row.node in authoritative
            ]
            if vanished:
                conn.execute(
                    update(_devices).where(_devices.c.uuid == bindparam("d_uuid")).values(present=False),
                    [{"d_uuid": row.uuid} for row in vanished],
                )
            _restore_bindings(tx, list(found_by_uuid))
            self._recount_allocations(conn)
            tx.changes.reload = True
            return [_device_from_row(row) for row in vanished]

        result: list[Device] = self.write(unit)
        return result

    def device_allocations(self) -> dict[str, tuple[int, int]]:
        """Bound (memory bytes, compute percent) per present device UUID."""
        return dict(self.view().allocations)

    def _recount_allocations(self, conn: Connection) -> None:
        """Recompute running totals from active bindings (start-up repair; cheap, exact)."""
        totals = conn.execute(
            select(
                _bindings.c.device_uuid,
                func.sum(_bindings.c.memory_bytes),
                func.sum(_bindings.c.compute_percent),
            )
            .where(_bindings.c.active.is_(True))
            .group_by(_bindings.c.device_uuid)
        ).all()
        conn.execute(update(_devices).values(allocated_memory_bytes=0, allocated_compute_percent=0))
        if totals:
            conn.execute(
                update(_devices)
                .where(_devices.c.uuid == bindparam("d_uuid"))
                .values(
                    allocated_memory_bytes=bindparam("d_memory"),
                    allocated_compute_percent=bindparam("d_compute"),
                ),
                [
                    {"d_uuid": uuid, "d_memory": int(memory or 0), "d_compute": int(compute or 0)}
                    for uuid, memory, compute in totals
                ],
            )

    def mark_missing_bindings(self, vanished_uuids: Iterable[str], actor: str = "pool") -> list[Claim]:
        """Flag active bindings on vanished devices (never dropped silently); return their claims."""
        uuids = list(vanished_uuids)
        if not uuids:
            return []

        def unit(tx: Tx) -> list[str]:
            conn = tx.conn
            rows = conn.execute(
                select(_bindings.c.claim_id, _bindings.c.device_uuid).where(
                    and_(_bindings.c.device_uuid.in_(uuids), _bindings.c.active.is_(True))
                )
            ).all()
            claim_ids = sorted({row.claim_id for row in rows})
            conn.execute(
                update(_bindings)
                .where(and_(_bindings.c.device_uuid.in_(uuids), _bindings.c.active.is_(True)))
                .values(missing=True)
            )
            for claim_id in claim_ids:
                devices = sorted(row.device_uuid for row in rows if row.claim_id == claim_id)
                tenant = conn.execute(select(_claims.c.tenant).where(_claims.c.id == claim_id)).scalar_one()
                tx.event(actor, "binding.missing", claim_id, tenant, {"devices": devices})
            tx.changes.reload = True
            return claim_ids

        claim_ids: list[str] = self.write(unit)
        return [self.get_claim(claim_id) for claim_id in claim_ids]

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
            return self._writer.run(
                self._add_claim_unit(tenant, spec, reason, actor, placement, lease_ttl_s, idempotency)
            )
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
        return _claims_with_bindings(conn, [row])[0]

    def _add_claim_unit(
        self,
        tenant: str,
        spec: ClaimSpec,
        reason: str,
        actor: str,
        placement: Sequence[Binding],
        lease_ttl_s: float | None,
        idempotency: IdempotencyKey | None = None,
    ) -> Callable[[Tx], Claim]:
        now = time.time()
        bound = bool(placement)
        claim = Claim(
            id=new_claim_id(),
            tenant=tenant,
            spec=spec,
            state=ClaimState.BOUND if bound else ClaimState.PENDING,
            reason="" if bound else reason,
            bindings=tuple(placement),
            created_at=now,
            updated_at=now,
            bound_at=now if bound else None,
        )

        values = _claim_values(claim)  # built by the caller's thread, not the writer's
        values["idempotency_key"] = None if idempotency is None else idempotency.key
        values["request_hash"] = None if idempotency is None else idempotency.request_hash
        binding_rows = _binding_rows(claim.id, placement)

        def unit(tx: Tx) -> Claim:
            if idempotency is not None:  # a retry: the claim the first request made, as it is now
                replayed = self._claim_for_key(tx.conn, tenant, idempotency)
                if replayed is not None:
                    return tx.claim(replayed.id) or replayed
            if len(placement) > 1:
                tx.guard()  # the second device may refuse after the first was charged
            if placement:
                # First, so that a placement that no longer fits costs one statement.
                _charge(tx, placement)
            tx.run(INSERT_CLAIM, values)
            tx.event(actor, "claim.created", claim.id, tenant, _spec_details(spec), now)
            if placement:
                tx.run(INSERT_BINDING, binding_rows[0] if len(binding_rows) == 1 else binding_rows)
                devices = [b.device_uuid for b in placement]
                tx.event("scheduler", "claim.bound", claim.id, tenant, {"devices": devices}, now)
            if lease_ttl_s is not None:
                tx.run(
                    INSERT_LEASE,
                    {"claim_id": claim.id, "ttl_s": lease_ttl_s, "expires_at": now + lease_ttl_s},
                )
            tx.changes.put(claim)
            return claim

        return unit

    async def add_claim_async(
        self,
        tenant: str,
        spec: ClaimSpec,
        reason: str,
        actor: str,
        placement: Sequence[Binding] = (),
        lease_ttl_s: float | None = None,
    ) -> Claim:
        """`add_claim` for a coroutine: the commit is awaited without holding a thread."""
        unit = self._add_claim_unit(tenant, spec, reason, actor, placement, lease_ttl_s)
        return await self._writer.run_async(unit)

    def bind_claim(self, claim_id: str, placement: Sequence[Binding], actor: str = "scheduler") -> Claim:
        """Bind a pending claim to all its devices at once, or change nothing.

        Raises CapacityError if any device would be over-committed, Conflict if the claim is no
        longer pending (another worker got there first, or it was released meanwhile).
        """
        now = time.time()
        binding_rows = _binding_rows(claim_id, placement)

        def unit(tx: Tx) -> Claim:
            tx.guard()  # a device may refuse after the claim's row changed
            if tx.run(BIND_CLAIM, {"id": claim_id, "now": now}).rowcount != 1:
                raise Conflict(f"claim {claim_id} is not pending")
            _charge(tx, placement)
            tx.run(INSERT_BINDING, binding_rows[0] if len(binding_rows) == 1 else binding_rows)
            current = tx.claim(claim_id) or _read_claim(tx.conn, claim_id)
            claim = dataclasses.replace(
                current,
                state=ClaimState.BOUND,
                reason="",
                bindings=tuple(placement),
                updated_at=now,
                bound_at=now,
            )
            devices = [b.device_uuid for b in placement]
            tx.event(actor, "claim.bound", claim_id, claim.tenant, {"devices": devices}, now)
            tx.changes.put(claim)
            return claim

        bound: Claim = self.write(unit)
        return bound

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
        return self._writer.run(self._end_claim_unit(claim_id, state, actor, reason, owner))

    async def end_claim_async(
        self,
        claim_id: str,
        state: ClaimState = ClaimState.RELEASED,
        actor: str = "pool",
        reason: str = "",
        owner: str | None = None,
    ) -> Claim:
        """`end_claim` for a coroutine: the commit is awaited without holding a thread."""
        return await self._writer.run_async(self._end_claim_unit(claim_id, state, actor, reason, owner))

    def _end_claim_unit(
        self, claim_id: str, state: ClaimState, actor: str, reason: str, owner: str | None
    ) -> Callable[[Tx], Claim]:
        now = time.time()

        def unit(tx: Tx) -> Claim:
            claim = tx.claim(claim_id) or _read_claim(tx.conn, claim_id)
            if owner is not None and claim.tenant != owner:
                raise NotFound(f"claim {claim_id} not found")
            return end_active_claim(tx, claim, state, actor, reason, now)

        return unit

    def mark_preempting(
        self, claim_id: str, deadline: float, reason: str, actor: str = "scheduler", **details: Any
    ) -> Claim | None:
        """Start the grace period of a bound claim: it keeps its devices until it ends, by `deadline`
        (epoch seconds). Returns the claim, or None if it is not bound or already preempting."""
        now = time.time()

        def unit(tx: Tx) -> Claim | None:
            marked = {"id": claim_id, "deadline": deadline, "reason": reason, "now": now}
            if tx.run(MARK_PREEMPTING, marked).rowcount != 1:
                return None
            current = tx.claim(claim_id) or _read_claim(tx.conn, claim_id)
            claim = dataclasses.replace(current, preempt_deadline=deadline, reason=reason, updated_at=now)
            event = {"reason": reason, "deadline": deadline, **details}
            tx.event(actor, "claim.preempting", claim_id, claim.tenant, event, now)
            tx.changes.put(claim)
            return claim

        marked: Claim | None = self.write(unit)
        return marked

    def preempting_claims(self) -> list[Claim]:
        """Bound claims in their preemption grace period, earliest deadline first."""
        return sorted(self.view().preempting.values(), key=lambda c: c.preempt_deadline or 0.0)

    def set_pending_reason(self, claim_id: str, reason: str) -> None:
        """Update the human reason of a pending claim (no event: it changes on every pass)."""
        cached = self.view().pending.get(claim_id)
        if cached is not None and cached.reason == reason:
            return  # unchanged: nothing to write

        def unit(tx: Tx) -> None:
            result = tx.run(SET_PENDING_REASON, {"id": claim_id, "reason": reason})
            current = tx.claim(claim_id)
            if result.rowcount == 1 and current is not None:
                tx.changes.put(dataclasses.replace(current, reason=reason))

        self.write(unit)

    def get_claim(self, claim_id: str) -> Claim:
        found = self.view().claims.get(claim_id)
        if found is not None:
            return found
        with self.engine.connect() as conn:  # ended (or unknown): history is read from the database
            return _read_claim(conn, claim_id)

    def list_claims(
        self,
        tenant: str | None = None,
        states: Iterable[ClaimState] | None = None,
        limit: int = 1000,
        id_prefix: str | None = None,
    ) -> list[Claim]:
        """Claims newest first (pending ones in queue order when only pending are asked for)."""
        wanted = None if states is None else {ClaimState(s).value for s in states}
        if wanted is not None and wanted <= set(ACTIVE_STATES):
            found = []
            for claim in reversed(list(self.view().claims.values())):  # a copy: the writer may add
                if id_prefix is not None and not claim.id.startswith(id_prefix):
                    continue
                if claim.state.value in wanted and (tenant is None or claim.tenant == tenant):
                    found.append(claim)
                    if len(found) >= limit:
                        break
            return found
        query = _claims_query(tenant, wanted, id_prefix).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            return _claims_with_bindings(conn, rows)

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
        wanted = None if states is None else {ClaimState(s).value for s in states}
        query = _claims_query(tenant, wanted, id_prefix)
        if before_seq is not None:
            query = query.where(_claims.c.seq < before_seq)
        query = query.limit(limit + 1)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
            page = _claims_with_bindings(conn, rows[:limit])
        return page, (int(rows[limit - 1].seq) if len(rows) > limit else None)

    def count_pending(self, min_priority: int | None = None) -> int:
        """How many claims wait, optionally only those at or above a priority (queued ahead)."""
        pending = self.view().pending
        if min_priority is None:
            return len(pending)
        return sum(1 for claim in list(pending.values()) if claim.spec.priority >= min_priority)

    def pending_claims(self) -> list[Claim]:
        """Pending claims in queue order: higher priority first, then arrival (FIFO)."""
        return sorted(self.view().pending.values(), key=lambda c: -c.spec.priority)

    # ----------------------------------------------------------------- tenants
    def create_tenant(self, name: str, token_hash: str, actor: str = "admin") -> Tenant:
        now = time.time()
        with self.transaction() as conn:
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
        now = time.time()

        def unit(tx: Tx) -> list[Claim]:
            conn = tx.conn
            if conn.execute(delete(schema.tenants).where(schema.tenants.c.name == name)).rowcount != 1:
                raise NotFound(f"tenant {name!r} not found")
            active = conn.execute(
                select(_claims)
                .where(and_(_claims.c.tenant == name, _claims.c.state.in_(ACTIVE_STATES)))
                .order_by(_claims.c.seq)
            ).all()
            released = [
                end_active_claim(tx, tx.claim(c.id) or c, ClaimState.RELEASED, actor, "tenant deleted", now)
                for c in _claims_with_bindings(conn, active)
            ]
            for table in (schema.quotas, schema.tenant_idle):
                conn.execute(delete(table).where(table.c.tenant == name))
            tx.changes.reload = True  # its quota went too: simplest to reread the state whole
            details = {"tenant": name, "released": [c.id for c in released]}
            tx.event(actor, "tenant.deleted", None, name, details, now)
            return released

        released: list[Claim] = self.write(unit)
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
        with self.transaction() as conn:  # tenants are not pool state
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
        now = time.time()
        self.write(lambda tx: tx.event(actor, action, claim_id, tenant, details or {}, now), PLAIN)

    def list_events(
        self,
        tenant: str | None = None,
        claim_id: str | None = None,
        after_id: int = 0,
        limit: int = 200,
    ) -> list[Event]:
        """Events oldest first after `after_id` (use the last id seen to follow the trail)."""
        query = select(_events).where(_events.c.id > after_id)
        if tenant is not None:
            query = query.where(_events.c.tenant == tenant)
        if claim_id is not None:
            query = query.where(_events.c.claim_id == claim_id)
        # Without a cursor the newest `limit` events are the useful ones; with one, the next ones.
        newest_first = after_id == 0
        order = _events.c.id.desc() if newest_first else _events.c.id.asc()
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

    def last_event_id(self) -> int:
        """The id of the newest event (0 when there is none): changes whenever anything happens."""
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(_events.c.id))).scalar_one() or 0)

    @staticmethod
    def _event(
        conn: Connection,
        actor: str,
        action: str,
        claim_id: str | None,
        tenant: str | None,
        details: dict[str, Any],
    ) -> None:
        row = event_row(actor, action, claim_id, tenant, details)
        execute(cursor_of(conn), paramstyle_of(conn), INSERT_EVENT, row)


# ---------------------------------------------------------------------- helpers
def end_active_claim(tx: Tx, claim: Claim, state: ClaimState, actor: str, reason: str, now: float) -> Claim:
    """Inside a unit: end `claim` (as read in this transaction) and free its devices; an ended
    claim is returned as it is. See `Store.end_claim` for the preempting case."""
    if not claim.state.is_active:
        return claim
    details: dict[str, Any] = {}
    final, why = state, reason
    if claim.preempting and state in (ClaimState.RELEASED, ClaimState.PREEMPTED):
        if reason and reason != claim.reason:
            details["stopped"] = reason
        final, why = ClaimState.PREEMPTED, claim.reason
    if tx.run(END_CLAIM, {"id": claim.id, "state": final.value, "reason": why, "now": now}).rowcount != 1:
        return _read_claim(tx.conn, claim.id)
    freed = tx.run(END_BINDINGS, {"id": claim.id, "yes": True, "no": False}).fetchall()
    if freed:
        credits = [
            {"uuid": uuid, "memory": int(memory), "compute": int(compute)} for uuid, memory, compute in freed
        ]
        tx.run(FREE_DEVICE, credits[0] if len(credits) == 1 else credits)
        for credit in credits:
            tx.changes.charge(credit["uuid"], -credit["memory"], -credit["compute"])
    action = "claim.released" if final == ClaimState.RELEASED else f"claim.{final.value}"
    if why:
        details = {"reason": why, **details}
    tx.event(actor, action, claim.id, claim.tenant, details, now)
    ended = dataclasses.replace(claim, state=final, reason=why, updated_at=now, ended_at=now)
    tx.changes.put(ended)
    return ended


def _charge(tx: Tx, placement: Sequence[Binding]) -> None:
    """Charge the placement's devices, refusing (CapacityError) any over-commit; the caller's
    transaction (or savepoint) is rolled back by the exception, undoing earlier charges."""
    for binding in placement:
        charge = {
            "uuid": binding.device_uuid,
            "memory": binding.memory_bytes,
            "compute": binding.compute_percent,
            "yes": True,
        }
        if tx.run(CHARGE_DEVICE, charge).rowcount != 1:
            raise CapacityError(f"device {binding.device_uuid} cannot take this binding any more")
        tx.changes.charge(binding.device_uuid, binding.memory_bytes, binding.compute_percent)


def _read_claim(conn: Connection, claim_id: str) -> Claim:
    row = conn.execute(SELECT_CLAIM, {"c_id": claim_id}).first()
    if row is None:
        raise NotFound(f"claim {claim_id} not found")
    return _claims_with_bindings(conn, [row])[0]


def _claims_with_bindings(conn: Connection, rows: Sequence[Row[Any]]) -> list[Claim]:
    if not rows:
        return []
    by_claim: dict[str, list[Binding]] = {row.id: [] for row in rows}
    for b in conn.execute(SELECT_BINDINGS, {"c_ids": list(by_claim)}):
        by_claim[b.claim_id].append(_binding_from_row(b))
    return [_claim_from_row(row, by_claim[row.id]) for row in rows]


def _spec_details(spec: ClaimSpec) -> dict[str, Any]:
    return {
        "gpus": spec.gpus,
        "memory_bytes": spec.memory_bytes,
        "compute_percent": spec.compute_percent,
        "model": spec.model,
        "priority": spec.priority,
        **({"mig": spec.mig} if spec.mig else {}),
    }


def _claims_query(tenant: str | None, states: set[str] | None, id_prefix: str | None) -> Select[Any]:
    """Claims newest first, of a tenant, in some states, with an id prefix (each when given)."""
    query = select(_claims)
    if tenant is not None:
        query = query.where(_claims.c.tenant == tenant)
    if id_prefix is not None:  # `%` and `_` in the prefix are literal characters
        query = query.where(_claims.c.id.startswith(id_prefix, autoescape=True))
    if states is not None:
        query = query.where(_claims.c.state.in_(sorted(states)))
    return query.order_by(_claims.c.seq.desc())


def _claim_values(claim: Claim) -> dict[str, Any]:
    """The claim's row, as the prepared INSERT takes it (JSON as text)."""
    spec = claim.spec
    return {
        "id": claim.id,
        "tenant": claim.tenant,
        "gpus": spec.gpus,
        "memory_bytes": spec.memory_bytes,
        "compute_percent": spec.compute_percent,
        "model": spec.model,
        "priority": spec.priority,
        "preemptible": spec.preemptible,
        "labels": as_json(dict(spec.labels)),
        "mig": spec.mig,
        "state": claim.state.value,
        "reason": claim.reason,
        "created_at": claim.created_at,
        "updated_at": claim.updated_at,
        "bound_at": claim.bound_at,
    }


def _binding_rows(claim_id: str, placement: Sequence[Binding]) -> list[dict[str, Any]]:
    return [
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
        }
        for binding in placement
    ]


def _binding_from_row(b: Row[Any]) -> Binding:
    return Binding(
        device_uuid=b.device_uuid,
        node=b.node,
        memory_bytes=int(b.memory_bytes),
        compute_percent=int(b.compute_percent),
        device_index=b.device_index,
        whole_device=bool(b.whole_device),
        missing=bool(b.missing),
    )


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


def _restore_bindings(tx: Tx, present_uuids: list[str]) -> None:
    """Clear `missing` on active bindings whose device is present again (one event per claim)."""
    missing = _bindings.c.missing.is_(True)
    active = _bindings.c.active.is_(True)
    rows = tx.conn.execute(
        select(_bindings.c.claim_id, _bindings.c.device_uuid).where(
            and_(missing, active, _bindings.c.device_uuid.in_(present_uuids))
        )
    ).all()
    if not rows:
        return
    tx.conn.execute(
        update(_bindings)
        .where(and_(missing, active, _bindings.c.device_uuid.in_(present_uuids)))
        .values(missing=False)
    )
    for claim_id in sorted({row.claim_id for row in rows}):
        devices = sorted(row.device_uuid for row in rows if row.claim_id == claim_id)
        tenant = tx.conn.execute(select(_claims.c.tenant).where(_claims.c.id == claim_id)).scalar_one()
        tx.event("pool", "binding.restored", claim_id, tenant, {"devices": devices})


def _quota_from_row(row: Row[Any]) -> Quota:
    return Quota(
        tenant=row.tenant,
        guarantee_gpus=row.guarantee_gpus,
        limit_gpus=row.limit_gpus,
        guarantee_memory_bytes=None
        if row.guarantee_memory_bytes is None
        else int(row.guarantee_memory_bytes),
        limit_memory_bytes=None if row.limit_memory_bytes is None else int(row.limit_memory_bytes),
    )


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
