"""What the VM rules (`vgpu-profile`, `passthrough`, `host-busy`) share: nothing to say on a pool
without VM traits (the simulator, plain hosts), else a rule over the GPUs still allowed."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState, slots_of
from gpupool.scheduler.request import Request
from gpupool.scheduler.status import SUCCESS, Status
from gpupool.scheduler.vm_slots import SlotTraits


class VmRule:
    NAME = ""

    def applies(self, request: Request) -> bool:
        """Does the rule concern this request at all (default: every request)."""
        return True

    def filter_slots(
        self, request: Request, cluster: Cluster, allowed: NDArray[np.bool_] | None, cycle: CycleState
    ) -> tuple[NDArray[np.bool_] | None, Status]:
        traits = cluster.slot_traits
        if traits is None or not self.applies(request):
            return None, SUCCESS
        return self.rule(request, traits, slots_of(cluster, allowed))

    def rule(
        self, request: Request, traits: SlotTraits, allowed: NDArray[np.bool_]
    ) -> tuple[NDArray[np.bool_], Status]:
        """The GPUs the request may use, and why the allowed ones it rules out are ruled out."""
        raise NotImplementedError
