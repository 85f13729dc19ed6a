"""`passthrough`: a GPU handed whole to a VM hosts nothing else.

A GPU a domain holds whole (recorded by gpupool or found in a domain's XML) takes no claim; a
passthrough claim needs a GPU with its own IOMMU group; a GPU bound to vfio-pci serves only VMs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.plugins.vm_rule import VmRule
from gpupool.scheduler.request import Request
from gpupool.scheduler.status import Status, unresolvable, unschedulable
from gpupool.scheduler.vm_slots import SlotTraits

NAME = "passthrough"
NOT_CAPABLE = "{gpus} cannot be passed through (no IOMMU group of their own)"
HELD = "{gpus} held whole by VM {domains}"
VM_ONLY = "{gpus} serve only VMs (bound to vfio-pci or holding vGPUs); host claims need the nvidia driver"


class PassthroughRule(VmRule):
    NAME = NAME

    def rule(
        self, request: Request, traits: SlotTraits, allowed: NDArray[np.bool_]
    ) -> tuple[NDArray[np.bool_], Status]:
        unheld = traits.passed_through_to == ""
        held = allowed & ~unheld
        reasons = [
            HELD.format(gpus=traits.names(held), domains=traits.values(traits.passed_through_to, held))
        ]
        if not held.any():
            reasons = []
        if request.passthrough:
            incapable = allowed & ~traits.passthrough_capable
            if incapable.any():
                reasons.insert(0, NOT_CAPABLE.format(gpus=traits.names(incapable)))
            status = unresolvable if not (allowed & traits.passthrough_capable).any() else unschedulable
            return traits.passthrough_capable & unheld, status("; ".join(reasons), NAME)
        if request.vgpu_profile:
            return unheld, unschedulable("; ".join(reasons), NAME)
        vm_only = allowed & unheld & traits.vm_only
        if vm_only.any():
            reasons.append(VM_ONLY.format(gpus=traits.names(vm_only)))
        return unheld & ~traits.vm_only, unschedulable("; ".join(reasons), NAME)
