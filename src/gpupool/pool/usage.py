"""What each tenant holds and waits for, in GPU-equivalents and bytes.

A vGPU's GPU-equivalent is its dominant share of its device: max(memory fraction, compute
fraction), so a whole GPU is 1.0 and a 20GiB/25% slice of an 80GiB GPU is 0.25. A MIG instance
is its compute slices of the parent: a 1g.10gb is 1/7, a 3g.40gb 3/7.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from gpupool.model import Binding, Claim, ClaimSpec, ClaimState, Device
from gpupool.model.mig import MIG_SLICES, profile_slices, split_instance_model


@dataclass
class TenantUsage:
    """Totals of one tenant's active claims."""

    tenant: str
    allocated_gpus: float = 0.0  # GPU-equivalents bound now
    allocated_memory_bytes: int = 0
    allocated_compute_percent: int = 0  # summed over vGPUs: 250 means two and a half GPUs of SMs
    bound_claims: int = 0
    pending_claims: int = 0
    pending_gpus: float = 0.0  # GPU-equivalents asked for by pending claims


def binding_gpus(binding: Binding, memory_total_bytes: int) -> float:
    """GPU-equivalents of one binding on a device with that much memory."""
    if binding.whole_device or memory_total_bytes <= 0:
        return 1.0 if binding.whole_device else binding.compute_percent / 100
    return max(binding.memory_bytes / memory_total_bytes, binding.compute_percent / 100)


def reference_memory_bytes(spec: ClaimSpec, devices: Sequence[Device]) -> int:
    """Memory of the largest device the spec may land on (0 when none matches)."""
    sizes = [
        d.memory_total_bytes
        for d in devices
        if spec.model is None or fnmatch.fnmatch(d.model.lower(), spec.model.lower())
    ]
    return max(sizes, default=0)


def mig_share(model: str) -> float:
    """The share of its parent GPU a device of this model is: 1.0 for a whole GPU."""
    instance = split_instance_model(model)
    return 1.0 if instance is None else profile_slices(instance[1])[0] / MIG_SLICES


def spec_gpus(spec: ClaimSpec, devices: Sequence[Device]) -> float:
    """GPU-equivalents a claim would take, estimated on the largest device it may land on."""
    if spec.mig is not None:
        return spec.gpus * profile_slices(spec.mig)[0] / MIG_SLICES
    if spec.whole_gpu:
        return float(spec.gpus)
    reference = reference_memory_bytes(spec, devices)
    if reference <= 0:
        return float(spec.gpus) * (spec.compute_percent or 100) / 100
    memory, compute = spec.demand_on(reference)
    return spec.gpus * max(memory / reference, compute / 100)


def spec_memory_bytes(spec: ClaimSpec, devices: Sequence[Device]) -> int:
    """Bytes a claim would take in all, estimated on the largest device it may land on."""
    reference = reference_memory_bytes(spec, devices)
    memory, _compute = spec.demand_on(reference) if reference else (spec.memory_bytes or 0, 0)
    return spec.gpus * memory


def claim_gpus(claim: Claim, devices_by_uuid: dict[str, Device], devices: Sequence[Device]) -> float:
    """GPU-equivalents a claim holds (bound) or asks for (pending)."""
    if claim.state == ClaimState.BOUND and claim.bindings:
        total = 0.0
        for b in claim.bindings:
            device = devices_by_uuid.get(b.device_uuid)
            if device is None:
                total += binding_gpus(b, 0)
            else:
                total += binding_gpus(b, device.memory_total_bytes) * mig_share(device.model)
        return total
    return spec_gpus(claim.spec, devices)


def tenant_usage(claims: Iterable[Claim], devices: Sequence[Device]) -> dict[str, TenantUsage]:
    """Usage per tenant from its active (bound and pending) claims."""
    by_uuid = {d.uuid: d for d in devices}
    usage: dict[str, TenantUsage] = {}
    for claim in claims:
        entry = usage.setdefault(claim.tenant, TenantUsage(tenant=claim.tenant))
        if claim.state == ClaimState.BOUND:
            entry.bound_claims += 1
            entry.allocated_gpus += claim_gpus(claim, by_uuid, devices)
            entry.allocated_memory_bytes += sum(b.memory_bytes for b in claim.bindings)
            entry.allocated_compute_percent += sum(b.compute_percent for b in claim.bindings)
        elif claim.state == ClaimState.PENDING:
            entry.pending_claims += 1
            entry.pending_gpus += spec_gpus(claim.spec, devices)
    return usage
