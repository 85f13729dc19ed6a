"""Durable records of the node agent: leases, workloads and per-tenant idle timeouts.

Kept apart from `Store` (claims and bindings) so the agent's bookkeeping never widens the claim
transactions; every method is one short transaction on the same engine.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Row, and_, delete, insert, select, update

from gpupool.errors import Conflict, NotFound
from gpupool.model.workload import Lease, Workload, WorkloadState
from gpupool.store import schema
from gpupool.store.store import Store

LIVE_STATES = (WorkloadState.STARTING.value, WorkloadState.RUNNING.value)


class RuntimeRecords:
    """Leases, workloads and idle settings in the pool's database."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self._write = store.transaction  # in turn with the store's writer: no lock waits in SQLite

    # ------------------------------------------------------------------ leases
    def renew_lease(self, claim_id: str, ttl_s: float, now: float | None = None) -> Lease:
        """Create or push out the lease of a claim to now + ttl_s seconds."""
        now = time.time() if now is None else now
        lease = Lease(claim_id=claim_id, ttl_s=ttl_s, expires_at=now + ttl_s)
        with self._write() as conn:
            found = conn.execute(
                update(schema.leases)
                .where(schema.leases.c.claim_id == claim_id)
                .values(ttl_s=ttl_s, expires_at=lease.expires_at)
            )
            if found.rowcount == 0:
                conn.execute(
                    insert(schema.leases),
                    {"claim_id": claim_id, "ttl_s": ttl_s, "expires_at": lease.expires_at},
                )
        return lease

    def drop_lease(self, claim_id: str) -> None:
        with self._write() as conn:
            conn.execute(delete(schema.leases).where(schema.leases.c.claim_id == claim_id))

    def expired_leases(self, now: float | None = None) -> list[Lease]:
        now = time.time() if now is None else now
        with self.engine.connect() as conn:
            rows = conn.execute(select(schema.leases).where(schema.leases.c.expires_at < now)).all()
        return [Lease(claim_id=r.claim_id, ttl_s=r.ttl_s, expires_at=r.expires_at) for r in rows]

    # --------------------------------------------------------------- workloads
    def add_workload(self, workload: Workload) -> Workload:
        """Record a new workload; Conflict if the claim already has a live one."""
        with self._write() as conn:
            row = conn.execute(
                select(schema.workloads.c.state).where(schema.workloads.c.claim_id == workload.claim_id)
            ).first()
            if row is not None and row.state in LIVE_STATES:
                raise Conflict(f"claim {workload.claim_id} already runs a workload")
            if row is not None:
                conn.execute(delete(schema.workloads).where(schema.workloads.c.claim_id == workload.claim_id))
            conn.execute(insert(schema.workloads), _workload_values(workload))
        return workload

    def update_workload(self, claim_id: str, **values: Any) -> Workload:
        """Change fields of a workload (state given as WorkloadState or str)."""
        if isinstance(values.get("state"), WorkloadState):
            values["state"] = values["state"].value
        with self._write() as conn:
            conn.execute(
                update(schema.workloads).where(schema.workloads.c.claim_id == claim_id).values(**values)
            )
        return self.get_workload(claim_id)

    def end_workload(self, claim_id: str, state: WorkloadState, exit_code: int | None, reason: str) -> bool:
        """Move a live workload to a final state; False if it had already ended (first writer wins)."""
        with self._write() as conn:
            result = conn.execute(
                update(schema.workloads)
                .where(
                    and_(schema.workloads.c.claim_id == claim_id, schema.workloads.c.state.in_(LIVE_STATES))
                )
                .values(state=state.value, exit_code=exit_code, reason=reason, ended_at=time.time())
            )
        return result.rowcount == 1

    def get_workload(self, claim_id: str) -> Workload:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(schema.workloads).where(schema.workloads.c.claim_id == claim_id)
            ).first()
        if row is None:
            raise NotFound(f"no workload for claim {claim_id}")
        return _workload_from_row(row)

    def list_workloads(
        self, tenant: str | None = None, live_only: bool = False, limit: int = 1000
    ) -> list[Workload]:
        query = select(schema.workloads)
        if tenant is not None:
            query = query.where(schema.workloads.c.tenant == tenant)
        if live_only:
            query = query.where(schema.workloads.c.state.in_(LIVE_STATES))
        query = query.order_by(schema.workloads.c.created_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_workload_from_row(row) for row in conn.execute(query).all()]

    # ------------------------------------------------------------ idle timeout
    def set_idle_timeout(self, tenant: str, seconds: float | None) -> None:
        with self._write() as conn:
            conn.execute(delete(schema.tenant_idle).where(schema.tenant_idle.c.tenant == tenant))
            conn.execute(insert(schema.tenant_idle), {"tenant": tenant, "idle_timeout_s": seconds})

    def idle_timeouts(self, tenants: Iterable[str] | None = None) -> dict[str, float | None]:
        """Per-tenant idle timeout overrides in seconds (tenants without one are absent)."""
        query = select(schema.tenant_idle)
        if tenants is not None:
            query = query.where(schema.tenant_idle.c.tenant.in_(list(tenants)))
        with self.engine.connect() as conn:
            return {row.tenant: row.idle_timeout_s for row in conn.execute(query).all()}


def _workload_values(workload: Workload) -> dict[str, Any]:
    return {
        "claim_id": workload.claim_id,
        "tenant": workload.tenant,
        "node": workload.node,
        "command": list(workload.command),
        "detached": workload.detached,
        "state": workload.state.value,
        "pid": workload.pid,
        "pid_start_ticks": workload.pid_start_ticks,
        "exit_code": workload.exit_code,
        "reason": workload.reason,
        "log_path": workload.log_path,
        "cwd": workload.cwd,
        "created_at": workload.created_at,
        "started_at": workload.started_at,
        "ended_at": workload.ended_at,
        "agent": workload.agent,
        "run_as": workload.run_as,
        "proof_hash": workload.proof_hash,
    }


def _workload_from_row(row: Row[Any]) -> Workload:
    return Workload(
        claim_id=row.claim_id,
        tenant=row.tenant,
        node=row.node,
        command=tuple(row.command or ()),
        detached=bool(row.detached),
        state=WorkloadState(row.state),
        pid=row.pid,
        pid_start_ticks=None if row.pid_start_ticks is None else int(row.pid_start_ticks),
        exit_code=row.exit_code,
        reason=row.reason or "",
        log_path=row.log_path,
        cwd=row.cwd,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        agent=row.agent,
        run_as=row.run_as,
        proof_hash=row.proof_hash,
    )
