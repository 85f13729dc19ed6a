"""`RayBackend`: the `DeviceBackend` of the control plane in cluster mode.

It aggregates the agents of the live nodes, so `PoolService` works unchanged: `devices()` is the
union of what every live node's agent reported, `telemetry()` a fan-out with a deadline. The
membership watcher adds and drops nodes; this class only keeps the table (thread-safe).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpupool.cluster import handles
from gpupool.model import Device, DeviceTelemetry

log = logging.getLogger("gpupool.cluster")

TELEMETRY_TIMEOUT_S = 1.0
"""How long one telemetry fan-out waits for the agents, in seconds; late nodes are left out."""


@dataclass
class NodeRecord:
    """One Ray node as the pool sees it. `state`: joining | alive | lost."""

    name: str
    ray_node_id: str
    address: str
    raylet_port: int
    actor: Any = None
    devices: tuple[Device, ...] = ()
    state: str = "joining"
    hostname: str = ""
    backend: str = ""
    reason: str = ""
    joined_at: float = field(default_factory=time.time)
    lost_at: float | None = None
    ping_failures: int = 0
    # Lost with proof of death (raylet gone, agent gone, Ray says dead): that Ray node id never
    # comes back (a restarted raylet gets a new id), so it is never readmitted.
    dead: bool = False


class RayBackend:
    """Devices and telemetry of every live node's agent actor."""

    name = "ray"

    def __init__(self, telemetry_timeout_s: float = TELEMETRY_TIMEOUT_S) -> None:
        self.telemetry_timeout_s = telemetry_timeout_s
        self._nodes: dict[str, NodeRecord] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ node table
    def put(self, record: NodeRecord) -> None:
        """Add a node, or replace the record of that name (a node that came back)."""
        with self._lock:
            self._nodes[record.name] = record

    def get(self, name: str) -> NodeRecord | None:
        with self._lock:
            return self._nodes.get(name)

    def records(self) -> list[NodeRecord]:
        """Every node ever seen under its latest record, lost ones included, by name."""
        with self._lock:
            return [self._nodes[name] for name in sorted(self._nodes)]

    def live(self) -> list[NodeRecord]:
        return [record for record in self.records() if record.state == "alive"]

    def actor_for(self, name: str) -> Any | None:
        """The agent actor of a live node, else None."""
        record = self.get(name)
        return record.actor if record is not None and record.state == "alive" else None

    # --------------------------------------------------------- DeviceBackend
    def devices(self) -> list[Device]:
        """Devices of the live nodes, ordered by node then index."""
        found = [device for record in self.live() for device in record.devices]
        return sorted(found, key=lambda d: (d.node, d.index))

    def telemetry(self) -> list[DeviceTelemetry]:
        """One sample per device of the nodes that answer within the deadline."""
        import ray

        refs = {record.name: record.actor.telemetry.remote() for record in self.live()}
        if not refs:
            return []
        ready, _late = ray.wait(list(refs.values()), num_returns=len(refs), timeout=self.telemetry_timeout_s)
        samples: list[DeviceTelemetry] = []
        for ref in ready:
            try:
                samples.extend(ray.get(ref, timeout=0))
            except Exception as exc:
                log.debug("telemetry from an agent failed: %s", exc)
        return samples

    def note_allocations(self, allocations: Mapping[str, tuple[int, int]]) -> None:
        """Send each live node what is bound on its devices (fire and forget)."""
        for record in self.live():
            mine = {d.uuid: allocations[d.uuid] for d in record.devices if d.uuid in allocations}
            record.actor.note_allocations.remote(mine)

    def close(self) -> None:
        """Stop every agent actor."""
        for record in self.records():
            if record.actor is not None:
                handles.kill(record.actor)
