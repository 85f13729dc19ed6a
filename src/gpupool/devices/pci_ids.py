"""NVIDIA data-center GPUs by PCI device id -> the model names claims match on.

libvirt knows a GPU only by its PCI ids and pci.ids product string ("GA100 [A100 PCIe 40GB]"); the
id table maps the common boards to gpupool's models (memory size included) and the product string
is the fallback for anything else.
"""

from __future__ import annotations

import re

from gpupool.devices.models import GpuModel, lookup_model
from gpupool.errors import InvalidRequest

PRODUCT_IDS: dict[int, str] = {
    0x1DB1: "V100-16GB",  # V100 SXM2 16GB
    0x1DB4: "V100-16GB",  # V100 PCIe 16GB
    0x1DB5: "V100-32GB",  # V100 SXM2 32GB
    0x1DB6: "V100-32GB",  # V100 PCIe 32GB
    0x1EB8: "T4",
    0x20B0: "A100-40GB",  # A100 SXM4 40GB
    0x20F1: "A100-40GB",  # A100 PCIe 40GB
    0x20B2: "A100-80GB",  # A100 SXM4 80GB
    0x20B5: "A100-80GB",  # A100 PCIe 80GB
    0x2236: "A10",
    0x26B9: "L40S",
    0x27B8: "L4",
    0x2330: "H100-80GB",  # H100 SXM5 80GB
    0x2331: "H100-80GB",  # H100 PCIe
    0x2335: "H200-141GB",  # H200 SXM 141GB
}

_BRACKETED = re.compile(r"\[(.+)\]")


def model_for_pci(product_id: int, product: str) -> tuple[str, GpuModel | None]:
    """(model name, known model or None) for a GPU's PCI product id and product string."""
    name = PRODUCT_IDS.get(product_id)
    if name is not None:
        return name, lookup_model(name)
    match = _BRACKETED.search(product)
    label = (match.group(1) if match else product).strip() or f"10de:{product_id:04x}"
    try:
        known = lookup_model(label.replace(" ", "-"))
    except InvalidRequest:
        return label, None
    return known.name, known
