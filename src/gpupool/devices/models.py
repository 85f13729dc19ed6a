"""Real GPU figures (memory as the driver reports it, SMs, MIG, NVLink) for simulation and naming.

Memory totals are what NVML reports as `memory.total` on recent drivers (R525+), which is what
`nvidia-smi` prints in MiB, e.g. an H100 80GB SXM shows 81559 MiB, not 80 GiB.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from gpupool.errors import InvalidRequest
from gpupool.model import MiB


@dataclass(frozen=True)
class GpuModel:
    """One GPU product as gpupool knows it.

    `name` is the canonical short name used in specs and claims ("H100-80GB"); `product_name` is
    the string NVML's `nvmlDeviceGetName` returns for the typical (SXM where one exists) board.
    """

    name: str
    product_name: str
    memory_total_bytes: int
    sm_count: int
    mig_capable: bool
    nvlink: bool  # the typical board (SXM/NVSwitch) links every GPU of a node by NVLink


_MODELS: tuple[GpuModel, ...] = (
    GpuModel("H200-141GB", "NVIDIA H200", 143771 * MiB, 132, mig_capable=True, nvlink=True),
    GpuModel("H100-80GB", "NVIDIA H100 80GB HBM3", 81559 * MiB, 132, mig_capable=True, nvlink=True),
    GpuModel("A100-80GB", "NVIDIA A100-SXM4-80GB", 81920 * MiB, 108, mig_capable=True, nvlink=True),
    GpuModel("A100-40GB", "NVIDIA A100-SXM4-40GB", 40960 * MiB, 108, mig_capable=True, nvlink=True),
    GpuModel("L40S", "NVIDIA L40S", 46068 * MiB, 142, mig_capable=False, nvlink=False),
    GpuModel("L4", "NVIDIA L4", 23034 * MiB, 58, mig_capable=False, nvlink=False),
    GpuModel("A10", "NVIDIA A10", 23028 * MiB, 72, mig_capable=False, nvlink=False),
    GpuModel("T4", "Tesla T4", 15360 * MiB, 40, mig_capable=False, nvlink=False),
    GpuModel("V100-32GB", "Tesla V100-SXM2-32GB", 32768 * MiB, 80, mig_capable=False, nvlink=True),
    GpuModel("V100-16GB", "Tesla V100-SXM2-16GB", 16384 * MiB, 80, mig_capable=False, nvlink=True),
)

GPU_MODELS: MappingProxyType[str, GpuModel] = MappingProxyType({model.name: model for model in _MODELS})
"""Every known model by canonical name, largest first."""

_BY_LOWER_NAME = {model.name.lower(): model for model in _MODELS}
_BY_PRODUCT_NAME = {model.product_name.lower(): model for model in _MODELS}
_VENDOR_PREFIXES = ("NVIDIA ", "Tesla ")


def known_model_names() -> tuple[str, ...]:
    """Canonical names of every known model, in table order."""
    return tuple(GPU_MODELS)


def lookup_model(name: str) -> GpuModel:
    """The model called `name` (case-insensitive); InvalidRequest naming the known ones otherwise."""
    model = _BY_LOWER_NAME.get(name.strip().lower())
    if model is None:
        known = ", ".join(known_model_names())
        raise InvalidRequest(f"unknown GPU model {name!r} (known models: {known})")
    return model


def model_for_product_name(product_name: str) -> GpuModel | None:
    """The known model whose NVML product name is `product_name`, or None."""
    return _BY_PRODUCT_NAME.get(product_name.strip().lower())


def canonical_model_name(product_name: str) -> str:
    """Map an NVML product name to the name claims match on: "NVIDIA H100 80GB HBM3" -> "H100-80GB".

    Unknown products keep their name without the vendor prefix ("NVIDIA H100 PCIe" -> "H100 PCIe").
    """
    model = model_for_product_name(product_name)
    if model is not None:
        return model.name
    name = product_name.strip()
    for prefix in _VENDOR_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name
