"""Leases: a `gpupool run` keeps its claim by heartbeat; a claim whose heartbeats stop is released.

Any agent may reap an expired lease: a lease is a row with a deadline, the same on every replica.
"""

from __future__ import annotations

from gpupool.agent.context import AgentContext
from gpupool.errors import NotFound
from gpupool.model import Claim, Tenant
from gpupool.model.workload import Lease


class Leases:
    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx

    def renew(self, tenant: Tenant, claim_id: str) -> tuple[Lease, Claim]:
        """Push out a claim's lease by the server's TTL; an ended claim's lease is dropped."""
        ctx = self.ctx
        claim = ctx.pool.get_claim(tenant, claim_id)
        if not claim.state.is_active:
            ctx.records.drop_lease(claim_id)
            return Lease(claim_id, ctx.options.lease_ttl_s, 0.0), claim
        return ctx.records.renew_lease(claim_id, ctx.options.lease_ttl_s), claim

    def reap_expired(self, now: float) -> None:
        ctx = self.ctx
        for lease in ctx.records.expired_leases(now):
            ctx.records.drop_lease(lease.claim_id)
            try:
                claim = ctx.pool.store.get_claim(lease.claim_id)
            except NotFound:
                continue
            if claim.state.is_active:
                late = now - lease.expires_at + lease.ttl_s
                ctx.release(claim, f"lease expired: no heartbeat for {late:.1f}s (ttl {lease.ttl_s:g}s)")
                ctx.event("agent.lease_expired", claim, {"ttl_s": lease.ttl_s, "was": claim.state.value})
