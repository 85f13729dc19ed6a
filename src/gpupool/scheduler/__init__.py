"""Placement policies behind one `Placer` contract; `make_placer(name)` picks one by name.

The framework (filter -> score -> pick -> Statement) lives in `framework`, plugins in `plugins/`,
policies as data in `profiles`; `live` adapts it to the pool and `gpupool.sim` replays traces
through the very same `Scheduler`.
"""

from gpupool.errors import InvalidRequest
from gpupool.scheduler.cluster import Allocation, Cluster
from gpupool.scheduler.contract import (
    DeviceLoad,
    NodeVerdict,
    PlacementResult,
    Placer,
    loads_on,
    with_bindings,
)
from gpupool.scheduler.firstfit import FirstFitPlacer
from gpupool.scheduler.framework import Decision, PluginContext, Ranking, Scheduler
from gpupool.scheduler.live import FrameworkPlacer, LiveCluster
from gpupool.scheduler.profiles import ALIASES, DEFAULT_POLICY, PROFILES, Profile, build_scheduler
from gpupool.scheduler.request import Request
from gpupool.scheduler.status import Code, Status

FIRSTFIT = "firstfit"


def policy_names() -> list[str]:
    """Every name `make_placer` accepts."""
    return sorted([*PROFILES, *ALIASES, FIRSTFIT])


def make_placer(policy: str = DEFAULT_POLICY) -> Placer:
    """Build the placer for a policy name (`default` names our policy, `ours`)."""
    if policy == FIRSTFIT:
        return FirstFitPlacer()
    if policy not in PROFILES and policy not in ALIASES:
        raise InvalidRequest(f"policy: unknown policy {policy!r} (known: {', '.join(policy_names())})")
    return FrameworkPlacer(policy)


__all__ = [
    "ALIASES",
    "DEFAULT_POLICY",
    "PROFILES",
    "Allocation",
    "Cluster",
    "Code",
    "Decision",
    "DeviceLoad",
    "FrameworkPlacer",
    "LiveCluster",
    "NodeVerdict",
    "PlacementResult",
    "Placer",
    "PluginContext",
    "Profile",
    "Ranking",
    "Request",
    "Scheduler",
    "Status",
    "build_scheduler",
    "loads_on",
    "make_placer",
    "policy_names",
    "with_bindings",
]
