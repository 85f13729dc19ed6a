"""`device-choice`: a claim that names its devices (a VM asking for one GPU by address) gets only those."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.request import Request
from gpupool.scheduler.status import SUCCESS, Status, unresolvable

NAME = "device-choice"
NOT_IN_POOL = "none of the chosen devices is in the pool"


class DeviceChoice:
    NAME = NAME

    def filter_slots(
        self, request: Request, cluster: Cluster, allowed: NDArray[np.bool_] | None, cycle: CycleState
    ) -> tuple[NDArray[np.bool_] | None, Status]:
        if request.devices is None:
            return None, SUCCESS
        mask = np.zeros(cluster.gpu_free_milli.shape, dtype=np.bool_)
        for node, row in enumerate(cluster.slot_ids or []):
            for slot, uuid in enumerate(row):
                mask[node, slot] = uuid in request.devices
        # Only a choice of nothing is this plugin's fault; other GPUs are simply not chosen.
        return mask, (SUCCESS if mask.any() else unresolvable(NOT_IN_POOL, NAME))
