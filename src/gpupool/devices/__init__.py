"""Device backends behind one protocol: `nvml` on real GPUs, `simulated` everywhere else."""

from __future__ import annotations

from gpupool.devices.base import DeviceBackend
from gpupool.devices.models import (
    GPU_MODELS,
    GpuModel,
    canonical_model_name,
    known_model_names,
    lookup_model,
    model_for_product_name,
)
from gpupool.devices.nvml import NVML_HINT, NvmlBackend
from gpupool.devices.simulated import RenamedSimulatedBackend, SimulatedBackend, simulated_uuid
from gpupool.devices.spec import PoolGroup, SimulatedNode, node_layout, one_node_spec, parse_spec
from gpupool.errors import DeviceBackendError

DEFAULT_SIMULATED_SPEC = "1x4xH100-80GB"
"""The pool served when no spec is given and no GPU is found."""

__all__ = [
    "DEFAULT_SIMULATED_SPEC",
    "GPU_MODELS",
    "NVML_HINT",
    "DeviceBackend",
    "GpuModel",
    "NvmlBackend",
    "PoolGroup",
    "RenamedSimulatedBackend",
    "SimulatedBackend",
    "SimulatedNode",
    "canonical_model_name",
    "known_model_names",
    "lookup_model",
    "model_for_product_name",
    "node_layout",
    "one_node_spec",
    "open_backend",
    "parse_spec",
    "simulated_uuid",
]


def open_backend(
    simulate: str | None = None, *, node_name: str | None = None
) -> tuple[DeviceBackend, str | None]:
    """The backend to serve and a one-line notice for the caller to log (None when nothing to say).

    With a spec: a simulated pool (a bad spec raises InvalidRequest). Without: NVML on this host,
    or, when NVML is unavailable or sees no GPU, a simulated `DEFAULT_SIMULATED_SPEC` pool.
    """
    if simulate is not None:
        return SimulatedBackend(simulate), None
    try:
        backend = NvmlBackend(node_name=node_name)
    except DeviceBackendError as exc:
        reason = exc.message
    else:
        try:
            found = len(backend.devices())
        except DeviceBackendError as exc:
            backend.close()
            reason = exc.message
        else:
            if found:
                return backend, None
            backend.close()
            reason = "NVML found 0 GPUs"
    notice = f"no usable GPU ({reason}); serving a simulated pool {DEFAULT_SIMULATED_SPEC}"
    return SimulatedBackend(DEFAULT_SIMULATED_SPEC), notice
