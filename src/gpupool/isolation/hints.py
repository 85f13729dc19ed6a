"""Framework hints: environment defaults so that frameworks which size themselves from the device
total do not grab the whole card. A user's own setting always wins (these are defaults)."""

from __future__ import annotations

from collections.abc import Mapping

from gpupool.model import Claim

MEMORY_FRACTION_HEADROOM = 0.95
"""XLA's fraction is of the device total; keep 5% of the quota for the CUDA context and cuBLAS."""


def framework_hints(claim: Claim, device_totals_bytes: Mapping[str, int]) -> dict[str, str]:
    """Defaults for a bound claim: nothing for whole GPUs (frameworks may take the card)."""
    bindings = [b for b in claim.bindings if not b.missing]
    if not bindings or all(b.whole_device for b in bindings):
        return {}
    fractions = [
        b.memory_bytes / device_totals_bytes[b.device_uuid]
        for b in bindings
        if device_totals_bytes.get(b.device_uuid)
    ]
    hints = {
        # JAX/XLA preallocates 75% of the device total by default.
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        # TensorFlow maps nearly all device memory at start unless told to grow.
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        # PyTorch allocates lazily; expandable segments cut fragmentation inside a tight quota.
        "PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True",
    }
    if fractions:
        fraction = min(fractions) * MEMORY_FRACTION_HEADROOM
        hints["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{fraction:.3f}"
        # For code that calls torch.cuda.set_per_process_memory_fraction(float(os.environ[...])).
        hints["GPUPOOL_MEMORY_FRACTION"] = f"{fraction:.3f}"
    return hints
