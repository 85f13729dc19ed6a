"""Placement policies behind one `Placer` contract; `make_placer(name)` picks one by name."""

from gpupool.errors import InvalidRequest
from gpupool.scheduler.contract import DeviceLoad, PlacementResult, Placer
from gpupool.scheduler.firstfit import FirstFitPlacer

DEFAULT_POLICY = "firstfit"


def make_placer(policy: str = DEFAULT_POLICY) -> Placer:
    """Build the placer for a policy name (`default` names the default policy)."""
    name = DEFAULT_POLICY if policy == "default" else policy
    if name == "firstfit":
        return FirstFitPlacer()
    raise InvalidRequest(f"policy: unknown policy {policy!r} (known: firstfit)")


__all__ = ["DEFAULT_POLICY", "DeviceLoad", "PlacementResult", "Placer", "make_placer"]
