"""Idle reclaim: release bound claims with no GPU activity for their tenant's idle timeout.

Activity is what this agent can see: on real devices their utilization (shared devices: any
activity keeps every claim there), on the simulated backend what the claim's own processes
declare. A device whose utilization is N/A (MIG instances) never counts as idle, and a claim run
by another agent's workload is that agent's to judge.
"""

from __future__ import annotations

import time

from gpupool.agent.context import AgentContext
from gpupool.agent.telemetry import Telemetry
from gpupool.errors import NotFound
from gpupool.model import Claim, ClaimState, Tenant


class IdleReclaimer:
    def __init__(self, ctx: AgentContext, telemetry: Telemetry) -> None:
        self.ctx = ctx
        self.telemetry = telemetry
        self.started_at = time.time()
        self._last_active: dict[str, float] = {}

    def timeout_for(self, tenant_name: str) -> float | None:
        """Seconds of no activity after which a tenant's claim is reclaimed; None means never."""
        value = self.ctx.records.idle_timeouts([tenant_name]).get(tenant_name)
        chosen = value if value is not None else self.ctx.options.idle_timeout_s
        return chosen or None

    def reclaim(self, now: float) -> None:
        ctx = self.ctx
        bound = ctx.pool.store.list_claims(states=[ClaimState.BOUND], limit=100_000)
        overrides = ctx.records.idle_timeouts()
        utilization = {s.uuid: s.utilization_percent for s in self.telemetry.latest}
        others = {w.claim_id for w in ctx.records.list_workloads(live_only=True) if not ctx.owns(w)}
        for claim in bound:
            if claim.id in others or self._is_active(claim, utilization):
                self._last_active[claim.id] = now
                continue
            override = overrides.get(claim.tenant)
            timeout = (override if override is not None else ctx.options.idle_timeout_s) or None
            if timeout is None:
                continue
            since = max(claim.bound_at or now, self.started_at, self._last_active.get(claim.id, 0.0))
            if now - since >= timeout:
                ctx.release(
                    claim, f"idle: no GPU activity for {now - since:.0f}s (idle timeout {timeout:g}s)"
                )
                ctx.event(
                    "agent.idle_reclaim", claim, {"idle_s": round(now - since, 1), "timeout_s": timeout}
                )
        bound_ids = {c.id for c in bound}
        self._last_active = {k: v for k, v in self._last_active.items() if k in bound_ids}

    def _is_active(self, claim: Claim, utilization: dict[str, float | None]) -> bool:
        threshold = self.ctx.options.idle_utilization_percent
        if any(b.device_uuid in utilization and utilization[b.device_uuid] is None for b in claim.bindings):
            return True  # N/A (a MIG instance has no counter) is unknown, never idle
        if self.ctx.simulated is not None:
            # Simulated device utilization is noise that follows allocation; only what the
            # claim's own processes declare is activity.
            return any(u.utilization_percent > threshold for u in self.telemetry.declared.get(claim.id, ()))
        for binding in claim.bindings:
            if binding.device_uuid not in utilization:
                return True  # not a device this agent samples: not ours to call idle
            value = utilization[binding.device_uuid]
            if value is not None and value > threshold:
                return True
        return False

    def set_timeout(self, tenant: Tenant, name: str, seconds: float | None) -> None:
        ctx = self.ctx
        ctx.pool.require_admin(tenant)
        if name not in {t.name for t in ctx.pool.store.list_tenants()}:
            raise NotFound(f"tenant {name!r} not found")
        ctx.records.set_idle_timeout(name, seconds)
        ctx.pool.store.add_event(
            tenant.name, "tenant.idle_timeout", tenant=name, details={"seconds": seconds}
        )

    def get_timeout(self, tenant: Tenant, name: str) -> tuple[float | None, float | None]:
        """(the tenant's own setting, the effective timeout) in seconds."""
        if not tenant.is_admin and tenant.name != name:
            raise NotFound(f"tenant {name!r} not found")
        return self.ctx.records.idle_timeouts([name]).get(name), self.timeout_for(name)
