"""Quota admission for one scheduling pass: may this claim bind now, and is it within its
tenant's guarantee (then it may preempt borrowers)?

Rules: a claim never takes its tenant above a limit; beyond a guarantee only preemptible claims
may borrow idle capacity; a tenant without a quota is unrestricted and never in-guarantee.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gpupool.model import Binding, Claim, ClaimSpec, ClaimState, Device, format_size
from gpupool.model.quota import Quota
from gpupool.pool.usage import TenantUsage, binding_gpus, spec_gpus, spec_memory_bytes, tenant_usage
from gpupool.store import Store
from gpupool.store.quotas import QuotaRecords

EPSILON = 1e-6
QUOTA_PREFIX = "quota: "
"""Every reason a quota gives starts with this, so the API can say which quota holds a claim."""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    in_guarantee: bool = False
    reason: str | None = None  # set when not allowed: which quota, by how much


class QuotaGate:
    """Quotas and usage for one pass; `note_bound` / `note_freed` keep usage true as it goes."""

    def __init__(self, quotas: dict[str, Quota], usage: dict[str, TenantUsage], devices: Sequence[Device]):
        self.quotas = quotas
        self.usage = usage
        self.devices = list(devices)
        self._memory_by_uuid = {d.uuid: d.memory_total_bytes for d in devices}

    @classmethod
    def load(
        cls, store: Store, devices: Sequence[Device], active: Iterable[Claim] | None = None
    ) -> QuotaGate:
        if active is None:
            active = store.list_claims(states=[ClaimState.PENDING, ClaimState.BOUND], limit=1_000_000)
        return cls(QuotaRecords(store).quotas(), tenant_usage(active, devices), devices)

    def _entry(self, tenant: str) -> TenantUsage:
        return self.usage.setdefault(tenant, TenantUsage(tenant=tenant))

    def verdict(self, tenant: str, spec: ClaimSpec) -> Verdict:
        quota = self.quotas.get(tenant)
        if quota is None:
            return Verdict(allowed=True)
        held = self._entry(tenant)
        need_gpus = spec_gpus(spec, self.devices)
        need_memory = spec_memory_bytes(spec, self.devices)
        if quota.limit_gpus is not None and held.allocated_gpus + need_gpus > quota.limit_gpus + EPSILON:
            return Verdict(
                False,
                reason=f"{QUOTA_PREFIX}limit of {tenant} is {quota.limit_gpus:g} GPU; it holds "
                f"{held.allocated_gpus:.2f} and this claim needs {need_gpus:.2f} more",
            )
        if (
            quota.limit_memory_bytes is not None
            and held.allocated_memory_bytes + need_memory > quota.limit_memory_bytes
        ):
            return Verdict(
                False,
                reason=f"{QUOTA_PREFIX}memory limit of {tenant} is {format_size(quota.limit_memory_bytes)}; "
                f"it holds {format_size(held.allocated_memory_bytes)} and this claim needs "
                f"{format_size(need_memory)} more",
            )
        within = quota.has_guarantee and (
            (
                quota.guarantee_gpus is None
                or held.allocated_gpus + need_gpus <= quota.guarantee_gpus + EPSILON
            )
            and (
                quota.guarantee_memory_bytes is None
                or held.allocated_memory_bytes + need_memory <= quota.guarantee_memory_bytes
            )
        )
        if quota.has_guarantee and not within and not spec.preemptible:
            return Verdict(
                False,
                reason=f"{QUOTA_PREFIX}beyond the guarantee of {tenant} ({_amount(quota)}) only "
                "preemptible claims may borrow idle GPUs",
            )
        return Verdict(allowed=True, in_guarantee=within)

    def borrowing(self, claim: Claim) -> bool:
        """True when taking this bound claim away leaves its tenant at or above its guarantee."""
        quota = self.quotas.get(claim.tenant)
        held = self._entry(claim.tenant)
        if quota is None or not quota.has_guarantee:
            return True
        gpus, memory = self._held_by(claim.bindings)
        return (
            quota.guarantee_gpus is None or held.allocated_gpus - gpus >= quota.guarantee_gpus - EPSILON
        ) and (
            quota.guarantee_memory_bytes is None
            or held.allocated_memory_bytes - memory >= quota.guarantee_memory_bytes
        )

    def note_bound(self, tenant: str, bindings: Sequence[Binding]) -> None:
        gpus, memory = self._held_by(bindings)
        entry = self._entry(tenant)
        entry.allocated_gpus += gpus
        entry.allocated_memory_bytes += memory
        entry.allocated_compute_percent += sum(b.compute_percent for b in bindings)

    def note_freed(self, claim: Claim) -> None:
        gpus, memory = self._held_by(claim.bindings)
        entry = self._entry(claim.tenant)
        entry.allocated_gpus -= gpus
        entry.allocated_memory_bytes -= memory
        entry.allocated_compute_percent -= sum(b.compute_percent for b in claim.bindings)

    def _held_by(self, bindings: Sequence[Binding]) -> tuple[float, int]:
        gpus = sum(binding_gpus(b, self._memory_by_uuid.get(b.device_uuid, 0)) for b in bindings)
        return gpus, sum(b.memory_bytes for b in bindings)


def admit(store: Store, devices: Sequence[Device], tenant: str, spec: ClaimSpec) -> Verdict:
    """The verdict for a new claim; cheap (one small query) when the tenant has no quota."""
    quotas = QuotaRecords(store).quotas()
    if tenant not in quotas:
        return Verdict(allowed=True)
    return QuotaGate.load(store, devices).verdict(tenant, spec)


def quota_reason(claim: Claim) -> str | None:
    """The quota that holds a pending claim back, if a quota is what it waits for."""
    if claim.state == ClaimState.PENDING and claim.reason.startswith(QUOTA_PREFIX):
        return claim.reason.removeprefix(QUOTA_PREFIX)
    return None


def _amount(quota: Quota) -> str:
    parts = []
    if quota.guarantee_gpus is not None:
        parts.append(f"{quota.guarantee_gpus:g} GPU")
    if quota.guarantee_memory_bytes is not None:
        parts.append(format_size(quota.guarantee_memory_bytes))
    return ", ".join(parts)
