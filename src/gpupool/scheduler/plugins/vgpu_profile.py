"""`vgpu-profile`: NVIDIA hosts vGPUs of one profile per physical GPU at a time.

A GPU with an A100-4C vGPU takes only more A100-4C (while the host can create them); a GPU hosting
vGPUs takes no other claim; a vGPU needs a GPU that offers its profile and runs no host claims.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.plugins.vm_rule import VmRule
from gpupool.scheduler.request import Request
from gpupool.scheduler.status import Status, unresolvable, unschedulable
from gpupool.scheduler.vm_slots import SlotTraits

NAME = "vgpu-profile"
NOT_OFFERED = "{gpus}: no vGPU profile {profile}"
OTHER_PROFILE = "{gpus} host {hosted} vGPUs, so they take only more of that profile"
HOST_CLAIMS = "{gpus} run host claims"
NONE_LEFT = "{gpus}: no {profile} instance left"


class VgpuProfileRule(VmRule):
    NAME = NAME

    def rule(
        self, request: Request, traits: SlotTraits, allowed: NDArray[np.bool_]
    ) -> tuple[NDArray[np.bool_], Status]:
        free = traits.hosted == ""
        profile = request.vgpu_profile
        if not profile:
            hosting = allowed & ~free
            reason = OTHER_PROFILE.format(
                gpus=traits.names(hosting), hosted=traits.values(traits.hosted, hosting)
            )
            return free, unschedulable(reason, NAME)
        offered = traits.offered(profile)
        same = free | (traits.hosted == profile)
        mask = offered & same & ~traits.host_claims & traits.creatable(profile)
        reasons: list[str] = []
        if (allowed & ~offered).any():
            reasons.append(NOT_OFFERED.format(gpus=traits.names(allowed & ~offered), profile=profile))
        other = allowed & offered & ~same
        if other.any():
            reasons.append(
                OTHER_PROFILE.format(gpus=traits.names(other), hosted=traits.values(traits.hosted, other))
            )
        claimed = allowed & offered & same & traits.host_claims
        if claimed.any():
            reasons.append(HOST_CLAIMS.format(gpus=traits.names(claimed)))
        full = allowed & offered & same & ~traits.host_claims & ~traits.creatable(profile)
        if full.any():
            reasons.append(NONE_LEFT.format(gpus=traits.names(full), profile=profile))
        if not (allowed & offered).any():
            return mask, unresolvable("; ".join(reasons), NAME)
        return mask, unschedulable("; ".join(reasons), NAME)
