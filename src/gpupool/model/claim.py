"""Claims (requests for vGPUs), their bindings to devices, and the states a claim moves through."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from gpupool.errors import InvalidRequest
from gpupool.model.mig import parse_profile


class ClaimState(enum.StrEnum):
    PENDING = "pending"
    BOUND = "bound"
    RELEASED = "released"
    PREEMPTED = "preempted"
    FAILED = "failed"
    LOST = "lost"  # bound to a device that disappeared (node gone, GPU removed)

    @property
    def is_active(self) -> bool:
        """Active claims hold (or wait for) capacity."""
        return self in (ClaimState.PENDING, ClaimState.BOUND)


MAX_GPUS_PER_CLAIM = 64


@dataclass(frozen=True)
class ClaimSpec:
    """What a claim asks for, per vGPU.

    `memory_bytes` and `compute_percent` are per GPU. Both None means whole GPUs. When only one
    is given, the other is derived on the chosen device in proportion (see `demand_on`).
    """

    gpus: int = 1
    memory_bytes: int | None = None
    compute_percent: int | None = None
    model: str | None = None  # fnmatch pattern on the device model, case-insensitive
    priority: int = 0
    preemptible: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    # A MIG profile ("1g.10gb"): whole MIG instances of it, on parents matching `model`. Without
    # it a claim never lands on a MIG instance, whatever its model pattern.
    mig: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.gpus, int) or isinstance(self.gpus, bool) or self.gpus < 1:
            raise InvalidRequest(f"gpus: must be a whole number >= 1, got {self.gpus!r}")
        if self.gpus > MAX_GPUS_PER_CLAIM:
            raise InvalidRequest(f"gpus: at most {MAX_GPUS_PER_CLAIM} per claim, got {self.gpus}")
        if self.memory_bytes is not None and self.memory_bytes <= 0:
            raise InvalidRequest(f"memory: must be greater than zero, got {self.memory_bytes}")
        if self.compute_percent is not None and not 1 <= self.compute_percent <= 100:
            raise InvalidRequest(f"compute: must be between 1 and 100, got {self.compute_percent}")
        if self.mig is not None:
            object.__setattr__(self, "mig", parse_profile(self.mig))
            if not self.whole_gpu:
                raise InvalidRequest("mig: a MIG instance is taken whole; drop memory and compute")

    @property
    def whole_gpu(self) -> bool:
        return self.memory_bytes is None and self.compute_percent is None

    def demand_on(self, memory_total_bytes: int) -> tuple[int, int]:
        """(memory bytes, compute percent) this spec takes from one device of that size."""
        if self.whole_gpu:
            return memory_total_bytes, 100
        memory = self.memory_bytes
        compute = self.compute_percent
        if memory is None:
            assert compute is not None
            memory = -(-memory_total_bytes * compute // 100)
        if compute is None:
            compute = max(1, min(100, -(-memory * 100 // memory_total_bytes)))
        return memory, compute


@dataclass(frozen=True)
class Binding:
    """One vGPU of a claim placed on one device."""

    device_uuid: str
    node: str
    memory_bytes: int
    compute_percent: int
    device_index: int = 0
    whole_device: bool = False
    missing: bool = False  # the device was not found at the last start-up


@dataclass(frozen=True)
class Claim:
    id: str
    tenant: str
    spec: ClaimSpec
    state: ClaimState
    reason: str = ""
    bindings: tuple[Binding, ...] = ()
    created_at: float = 0.0
    updated_at: float = 0.0
    bound_at: float | None = None
    ended_at: float | None = None
    # Set while a bound claim is being preempted: its workload must stop by then (epoch seconds);
    # it keeps its devices until it ends, and then ends as `preempted` whoever ends it.
    preempt_deadline: float | None = None

    @property
    def preempting(self) -> bool:
        return self.state == ClaimState.BOUND and self.preempt_deadline is not None


@dataclass(frozen=True)
class Event:
    """One line of the append-only audit trail."""

    id: int
    timestamp: float
    actor: str
    action: str
    claim_id: str | None = None
    tenant: str | None = None  # whose claim or tenant it concerns
    details: dict[str, Any] = field(default_factory=dict)
