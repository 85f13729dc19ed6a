"""Claims that no node of the pool could hold even with every device free.

A claim's GPUs all go on one node and one model (the placer's rows), each device must have the
memory asked for, and the model pattern must match. When no (node, model) group can ever satisfy
that, waiting is pointless: the pool refuses the claim at once (HTTP 422, CLI exit 2) and says
what the nearest claim that fits would be. Where nodes join later (Ray cluster mode) the same
finding becomes the pending reason instead, and the claim waits for a node that can hold it.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from gpupool.model import ClaimSpec, Device, GiB, describe_size, format_size

MIG_MARK = " mig "


def model_matches(pattern: str | None, model: str) -> bool:
    """The scheduler's rule: a case-insensitive fnmatch of the claim's pattern on the device model."""
    return pattern is None or fnmatch.fnmatch(model.lower(), pattern.lower())


@dataclass(frozen=True)
class Unfit:
    """What makes a claim impossible on this inventory, and the nearest claim that would fit."""

    field: str  # the claim field to change: gpus, memory or model
    problem: str  # e.g. "no node has 5 GPUs"
    nearest: str  # what the pool has, e.g. "the most on one node is 4 (node-0, H100-80GB)"
    advice: str = ""  # the nearest claim that fits, e.g. "ask for at most 4 per claim"

    def refusal(self) -> str:
        """The one-line error for a pool whose inventory is all it will ever have."""
        advice = f": {self.advice}" if self.advice else ""
        return f"{self.field}: {self.problem}, so this claim could never bind; {self.nearest}{advice}"

    def waiting_reason(self) -> str:
        """The pending reason where nodes may join later (cluster mode)."""
        return f"{self.problem} yet ({self.nearest}); waiting for a node that can hold it to join"


def never_fits(spec: ClaimSpec, devices: Sequence[Device]) -> Unfit | None:
    """Why `spec` cannot be bound on these devices even when all are free; None when it can."""
    if not devices:
        return None  # an empty inventory (a cluster before its nodes join) proves nothing
    matching = [d for d in devices if model_matches(spec.model, d.model)]
    if not matching:
        if _mig_instance_may_be_made(spec.model, devices):
            return None
        models = ", ".join(sorted({d.model for d in devices}))
        return Unfit("model", f"no device matches {spec.model!r}", f"this pool has {models}")
    memory = spec.memory_bytes
    roomy = [d for d in matching if memory is None or d.memory_total_bytes >= memory]
    if not roomy:
        assert memory is not None
        largest = max(matching, key=lambda d: d.memory_total_bytes)
        which = f"{spec.model!r} device" if spec.model else "device"
        return Unfit(
            "memory",
            f"no {which} has {describe_size(memory)}",
            f"the largest is {largest.model} with {describe_size(largest.memory_total_bytes)}",
            f"ask for at most {_at_most(largest.memory_total_bytes)}",
        )
    groups: dict[tuple[str, str], int] = defaultdict(int)
    for device in roomy:
        groups[(device.node, device.model)] += 1
    (node, model), most = max(sorted(groups.items()), key=lambda item: item[1])  # first node of the most
    if most >= spec.gpus:
        return None
    which = f" matching {spec.model!r}" if spec.model else ""
    each = f" with {format_size(memory)} each" if memory is not None else ""
    return Unfit(
        "gpus",
        f"no node has {spec.gpus} GPUs{which}{each}",
        f"the most on one node is {most} ({node}, {model})",
        f"ask for at most {most} per claim",
    )


def _at_most(num_bytes: int) -> str:
    """A size no larger than `num_bytes`, in 0.01 GiB steps (rounding must not tip it over)."""
    hundredths = num_bytes * 100 // GiB
    return f"{hundredths / 100:g}GiB" if hundredths else format_size(num_bytes)


def _mig_instance_may_be_made(pattern: str | None, devices: Sequence[Device]) -> bool:
    """A MIG profile pattern (`H100* MIG 1g.10gb`) on a pool with a MIG-capable GPU of that model:
    an instance may be created for it, so it is not impossible."""
    if pattern is None or MIG_MARK not in f" {pattern.lower()} ":
        return False
    parent = pattern.lower().split(" mig ", 1)[0].strip() or "*"
    return any(d.mig_capable and model_matches(parent, d.model) for d in devices)
