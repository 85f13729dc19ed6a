"""`host-busy`: a GPU that host processes hold open cannot be passed through to a VM.

Handing it over unbinds the nvidia driver under those processes (libvirt's managed hostdev), which
fails or kills their work; they must stop first.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState, slots_of
from gpupool.scheduler.request import Request
from gpupool.scheduler.status import SUCCESS, Status, unschedulable

NAME = "host-busy"
BUSY = "{gpus} in use by host processes (pids {pids})"


class HostBusyRule:
    NAME = NAME

    def filter_slots(
        self, request: Request, cluster: Cluster, allowed: NDArray[np.bool_] | None, cycle: CycleState
    ) -> tuple[NDArray[np.bool_] | None, Status]:
        traits = cluster.slot_traits
        if traits is None or not request.passthrough:
            return None, SUCCESS
        busy = np.vectorize(bool, otypes=[np.bool_])(traits.host_pids)
        shown = slots_of(cluster, allowed) & busy
        pids = sorted({pid for held in traits.host_pids[shown] for pid in held})
        return ~busy, unschedulable(
            BUSY.format(gpus=traits.names(shown), pids=", ".join(map(str, pids))), NAME
        )
