"""`vgpu-profile`: NVIDIA hosts vGPUs of one profile per physical GPU at a time.

A GPU with an A100-4C vGPU takes only more A100-4C (while the host can create them); a GPU hosting
vGPUs takes no other claim; a vGPU needs a GPU that offers its profile and runs no host claims.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.request import Request
from gpupool.scheduler.status import SUCCESS, Status, unresolvable, unschedulable

NAME = "vgpu-profile"
NOT_OFFERED = "no GPU offers vGPU profile {profile}"
OTHER_PROFILE = "every GPU that offers {profile} hosts vGPUs of another profile ({hosted})"
HOST_CLAIMS = "every GPU that offers {profile} runs host claims"
NONE_LEFT = "no {profile} instance can be created now (every GPU offering it is full)"
HOSTS_VGPUS = "every GPU hosts vGPUs ({hosted}): such a GPU takes only more of its profile"


class VgpuProfileRule:
    NAME = NAME

    def filter_slots(
        self, request: Request, cluster: Cluster, cycle: CycleState
    ) -> tuple[NDArray[np.bool_] | None, Status]:
        traits = cluster.slot_traits
        if traits is None:
            return None, SUCCESS
        free = traits.hosted == ""
        if not request.vgpu_profile:
            hosted = ", ".join(sorted({str(p) for p in traits.hosted.ravel() if p}))
            return free, unschedulable(HOSTS_VGPUS.format(hosted=hosted), NAME)
        profile = request.vgpu_profile
        offered = traits.offered(profile)
        if not offered.any():
            return offered, unresolvable(NOT_OFFERED.format(profile=profile), NAME)
        same = free | (traits.hosted == profile)
        mask = offered & same & ~traits.host_claims & traits.creatable(profile)
        if not (offered & same).any():
            others = ", ".join(sorted({str(p) for p in traits.hosted[offered] if p}))
            return mask, unschedulable(OTHER_PROFILE.format(profile=profile, hosted=others), NAME)
        if not (offered & same & ~traits.host_claims).any():
            return mask, unschedulable(HOST_CLAIMS.format(profile=profile), NAME)
        return mask, unschedulable(NONE_LEFT.format(profile=profile), NAME)
