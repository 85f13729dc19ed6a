"""The launch environment of a claim: which devices a workload sees and the limits it must keep.

Whole GPUs are isolated by visibility alone; fractional vGPUs also get CUDA MPS client limits
(memory pinned per device, share of SMs), which the MPS server enforces in hardware.
"""

from __future__ import annotations

from gpupool.model import Claim, MiB


def launch_env(claim: Claim) -> dict[str, str]:
    """Environment variables for a bound claim (empty for a claim that holds no device)."""
    bindings = [b for b in claim.bindings if not b.missing]
    if not bindings:
        return {}
    uuids = ",".join(b.device_uuid for b in bindings)
    env = {
        "CUDA_VISIBLE_DEVICES": uuids,
        "NVIDIA_VISIBLE_DEVICES": uuids,
        # Stable enumeration order across tools (nvidia-smi uses PCI order too).
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
        "GPUPOOL_CLAIM_ID": claim.id,
        "GPUPOOL_TENANT": claim.tenant,
        "GPUPOOL_DEVICES": uuids,
        "GPUPOOL_MEMORY_LIMIT_BYTES": ",".join(str(b.memory_bytes) for b in bindings),
        "GPUPOOL_COMPUTE_PERCENT": ",".join(str(b.compute_percent) for b in bindings),
    }
    if not all(b.whole_device for b in bindings):
        # MPS ordinals count the visible devices, so 0..n-1 in binding order.
        env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] = str(min(b.compute_percent for b in bindings))
        env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] = ",".join(
            f"{ordinal}={max(1, b.memory_bytes // MiB)}M" for ordinal, b in enumerate(bindings)
        )
    return env
