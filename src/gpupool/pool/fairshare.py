"""Fair share: the order of the pending queue across tenants, by Dominant Resource Fairness.

A tenant's dominant share is the larger of its memory share and its compute share of the pool.
The queue repeatedly takes the next claim of the tenant with the smallest share (tenants still
below their guarantee first), and counts that claim's demand before choosing again, so one
tenant's burst cannot starve another. Inside a tenant: higher priority first, then arrival.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from gpupool.model import Claim, Device
from gpupool.pool.quota import QuotaGate
from gpupool.pool.usage import reference_memory_bytes


def tenant_queue_key(claim: Claim) -> tuple[int, float, str]:
    """Order inside one tenant: priority descending, then creation time, then id."""
    return (-claim.spec.priority, claim.created_at, claim.id)


def fair_order(pending: Sequence[Claim], gate: QuotaGate, devices: Sequence[Device]) -> list[Claim]:
    """Pending claims in the order the scheduler should try them."""
    total_memory = sum(d.memory_total_bytes for d in devices) or 1
    total_compute = 100 * len(devices) or 1
    by_tenant: dict[str, list[Claim]] = {}
    for claim in pending:
        by_tenant.setdefault(claim.tenant, []).append(claim)
    memory: dict[str, float] = {}
    compute: dict[str, float] = {}
    gpus: dict[str, float] = {}
    heap: list[tuple[int, float, float, str]] = []
    for tenant, claims in by_tenant.items():
        claims.sort(key=tenant_queue_key, reverse=True)  # pop() from the end takes the first
        held = gate.usage.get(tenant)
        memory[tenant] = float(held.allocated_memory_bytes) if held else 0.0
        compute[tenant] = float(held.allocated_compute_percent) if held else 0.0
        gpus[tenant] = held.allocated_gpus if held else 0.0
        heap.append(_entry(tenant, claims[-1], gate, gpus, memory, compute, total_memory, total_compute))
    heapq.heapify(heap)
    order: list[Claim] = []
    while heap:
        *_ignored, tenant = heapq.heappop(heap)
        claim = by_tenant[tenant].pop()
        order.append(claim)
        reference = reference_memory_bytes(claim.spec, devices)
        if reference:
            claim_memory, claim_compute = claim.spec.demand_on(reference)
            memory[tenant] += claim.spec.gpus * claim_memory
            compute[tenant] += claim.spec.gpus * claim_compute
            gpus[tenant] += claim.spec.gpus * max(claim_memory / reference, claim_compute / 100)
        if by_tenant[tenant]:
            heapq.heappush(
                heap,
                _entry(
                    tenant, by_tenant[tenant][-1], gate, gpus, memory, compute, total_memory, total_compute
                ),
            )
    return order


def _entry(
    tenant: str,
    head: Claim,
    gate: QuotaGate,
    gpus: dict[str, float],
    memory: dict[str, float],
    compute: dict[str, float],
    total_memory: int,
    total_compute: int,
) -> tuple[int, float, float, str]:
    quota = gate.quotas.get(tenant)
    below_guarantee = (
        quota is not None and quota.guarantee_gpus is not None and gpus[tenant] < quota.guarantee_gpus
    )
    share = max(memory[tenant] / total_memory, compute[tenant] / total_compute)
    return (0 if below_guarantee else 1, share, head.created_at, tenant)
