"""`host-busy`: a GPU that host processes hold open cannot be passed through to a VM.

Handing it over unbinds the nvidia driver under those processes (libvirt's managed hostdev), which
fails or kills their work; they must stop first.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.plugins.vm_rule import VmRule
from gpupool.scheduler.request import Request
from gpupool.scheduler.status import Status, unschedulable
from gpupool.scheduler.vm_slots import SlotTraits

NAME = "host-busy"
BUSY = "{gpus} in use by host processes (pids {pids})"


class HostBusyRule(VmRule):
    NAME = NAME

    def applies(self, request: Request) -> bool:
        return request.passthrough

    def rule(
        self, request: Request, traits: SlotTraits, allowed: NDArray[np.bool_]
    ) -> tuple[NDArray[np.bool_], Status]:
        busy = np.vectorize(bool, otypes=[np.bool_])(traits.host_pids)
        shown = allowed & busy
        pids = sorted({pid for held in traits.host_pids[shown] for pid in held})
        return ~busy, unschedulable(
            BUSY.format(gpus=traits.names(shown), pids=", ".join(map(str, pids))), NAME
        )
