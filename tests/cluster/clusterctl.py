"""Helpers of the cluster tests: the control plane under test and a polling wait."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from raycluster import LocalRayCluster

from gpupool.agent import NodeAgent
from gpupool.cluster import ClusterMode
from gpupool.pool import PoolService


@dataclass
class ControlPlane:
    ray: LocalRayCluster
    cluster: ClusterMode
    pool: PoolService
    agent: NodeAgent
    url: str
    home: Path

    def devices_on(self, node: str) -> list[str]:
        return [d.uuid for d in self.pool.devices if d.node == node]


def wait_for(predicate: Callable[[], object], timeout_s: float = 20.0, interval_s: float = 0.05) -> float:
    """Poll until `predicate()` is true; return the seconds it took (AssertionError on timeout)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"condition not met in {timeout_s}s")
        time.sleep(interval_s)
    return time.monotonic() - started
