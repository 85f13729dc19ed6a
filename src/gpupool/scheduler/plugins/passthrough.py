"""`passthrough`: a GPU handed whole to a VM hosts nothing else.

A GPU a domain holds whole (recorded by gpupool or found in a domain's XML) takes no claim; a
passthrough claim needs a GPU with its own IOMMU group; a GPU bound to vfio-pci serves only VMs.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.request import Request
from gpupool.scheduler.status import SUCCESS, Status, unresolvable, unschedulable

NAME = "passthrough"
NOT_CAPABLE = "no GPU can be passed through (none is in an IOMMU group of its own)"
HELD = "every GPU that could take it is held whole by a VM ({domains})"
VM_ONLY = "every free GPU is bound to vfio-pci for VMs; host claims need the nvidia driver"


class PassthroughRule:
    NAME = NAME

    def filter_slots(
        self, request: Request, cluster: Cluster, cycle: CycleState
    ) -> tuple[NDArray[np.bool_] | None, Status]:
        traits = cluster.slot_traits
        if traits is None:
            return None, SUCCESS
        unheld = traits.passed_through_to == ""
        domains = ", ".join(sorted({str(d) for d in traits.passed_through_to.ravel() if d}))
        if request.passthrough:
            if not traits.passthrough_capable.any():
                return traits.passthrough_capable, unresolvable(NOT_CAPABLE, NAME)
            return traits.passthrough_capable & unheld, unschedulable(HELD.format(domains=domains), NAME)
        if request.vgpu_profile:
            return unheld, unschedulable(HELD.format(domains=domains), NAME)
        mask = unheld & ~traits.vm_only
        if not unheld.any():
            return mask, unschedulable(HELD.format(domains=domains), NAME)
        return mask, unschedulable(VM_ONLY, NAME)
