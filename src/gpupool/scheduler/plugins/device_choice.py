"""`device-choice`: a claim that names its devices (a VM asking for one GPU by address) gets only those."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.request import Request
from gpupool.scheduler.status import SUCCESS, Status, unresolvable, unschedulable

NAME = "device-choice"


class DeviceChoice:
    NAME = NAME

    def filter_slots(
        self, request: Request, cluster: Cluster, cycle: CycleState
    ) -> tuple[NDArray[np.bool_] | None, Status]:
        if request.devices is None:
            return None, SUCCESS
        mask = np.zeros(cluster.gpu_free_milli.shape, dtype=np.bool_)
        for node, row in enumerate(cluster.slot_ids or []):
            for slot, uuid in enumerate(row):
                mask[node, slot] = uuid in request.devices
        if not mask.any():
            return mask, unresolvable("none of the chosen devices is in the pool", NAME)
        return mask, unschedulable(f"the chosen device(s) cannot take {request.gpus} vGPU(s) here", NAME)
