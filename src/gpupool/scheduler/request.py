"""A claim as the scheduler sees it: one shape in array units (milli-CPU, milli-GPU, memory)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

MILLI_PER_GPU = 1000  # a whole GPU in milli-GPU; live compute percent maps to percent * 10
IMPOSSIBLE_DEMAND = np.iinfo(np.int64).max // 4  # a per-slot demand no GPU meets (slot ruled out)


class Kind(enum.IntEnum):
    """Claim kinds as GpuClustering tags them: CPU-only, a share of one GPU, or k whole GPUs."""

    CPU_ONLY = -1
    SHARE = 0
    # 1..64: k whole GPUs


@dataclass(frozen=True, eq=False)
class Request:
    """What one claim asks for, in the cluster's units.

    `gpu_milli` is per GPU (1..1000, 0 when `gpus == 0`); `memory` is node memory in the cluster's
    unit (MiB in the simulator, unused live); `gpu_memory_bytes` is per GPU (live; 0 in the simulator).
    `slot_milli` / `slot_memory` override the per-GPU demand per (node, slot) when it depends on the
    device (live: a compute-only claim takes memory in proportion to each device's size).
    """

    gpus: int = 0
    gpu_milli: int = 0
    cpu_milli: int = 0
    memory: int = 0
    gpu_memory_bytes: int = 0
    models: tuple[str, ...] | None = None  # allowed exact model names; None = any
    model_pattern: str | None = None  # case-insensitive fnmatch; None = any
    describe: str = ""  # the per-GPU demand in words, for reasons ("40GiB", "500 milli-GPU")
    slot_milli: NDArray[np.int64] | None = None
    slot_memory: NDArray[np.int64] | None = None
    priority: int = 0
    # VM claims (live only, from the claim's labels; see `plugins/vgpu_profile` and friends):
    vgpu_profile: str = ""  # one mediated/VF vGPU of this profile per GPU
    passthrough: bool = False  # whole GPUs handed to a VM
    devices: frozenset[str] | None = None  # device UUIDs the claim may use; None = any

    @property
    def kind(self) -> int:
        """GpuClustering tag: -1 CPU-only, 0 shared GPU, k for k whole GPUs."""
        if self.gpus == 0:
            return int(Kind.CPU_ONLY)
        if self.gpus == 1 and self.gpu_milli < MILLI_PER_GPU:
            return int(Kind.SHARE)
        return self.gpus

    @property
    def whole(self) -> bool:
        """True when every requested GPU is taken whole."""
        return self.gpus > 0 and self.gpu_milli >= MILLI_PER_GPU

    @property
    def total_gpu_milli(self) -> int:
        return self.gpus * self.gpu_milli

    def shape(self) -> tuple[Any, ...]:
        """Hashable shape for caches and workload histograms (memory is ignored, as in FGD)."""
        return (self.cpu_milli, self.gpu_milli, self.gpus, self.models, self.model_pattern)
