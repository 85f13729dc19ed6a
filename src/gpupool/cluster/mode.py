"""Cluster mode in one object: join Ray, run the agents and the watcher, serve the node table.

cluster = ClusterMode.join("auto")          # ray.init, one agent actor per node
pool = PoolService(store, cluster.backend, placer)
cluster.attach(pool, agent)                 # workloads go to nodes; joins and losses reach the pool
...
cluster.close()
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from gpupool.agent import AgentOptions, MpsMode, NodeAgent
from gpupool.cluster.backend import NodeRecord, RayBackend
from gpupool.cluster.membership import MembershipWatcher
from gpupool.cluster.supervisor import ClusterSupervisor
from gpupool.errors import DeviceBackendError
from gpupool.isolation import WatchdogMode
from gpupool.model.node_wire import NodePublic
from gpupool.pool import PoolService

log = logging.getLogger("gpupool.cluster")

RAY_HINT = "install it with `pip install 'gpupool[ray]'`"


@dataclass(frozen=True)
class ClusterOptions:
    """Times in seconds: how often the watcher runs, a ping's deadline, misses before death."""

    interval_s: float = 0.5
    ping_timeout_s: float = 1.0
    max_ping_failures: int = 2
    discover_timeout_s: float = 60.0


class ClusterMode:
    mode = "ray"

    def __init__(self, backend: RayBackend, watcher: MembershipWatcher, owns_ray: bool) -> None:
        self.backend = backend
        self.watcher = watcher
        self.owns_ray = owns_ray
        self.pool: PoolService | None = None

    @classmethod
    def join(cls, address: str, options: ClusterOptions | None = None) -> ClusterMode:
        """Connect to the Ray cluster at `address` (or `auto`) and start an agent on every node."""
        options = options or ClusterOptions()
        try:
            import ray
        except ImportError as exc:
            raise DeviceBackendError(f"cluster mode needs Ray ({RAY_HINT})") from exc
        owns_ray = not ray.is_initialized()
        if owns_ray:
            try:
                ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise DeviceBackendError(f"cannot join the Ray cluster at {address!r}: {exc}") from None
        backend = RayBackend()
        watcher = MembershipWatcher(
            backend,
            interval_s=options.interval_s,
            ping_timeout_s=options.ping_timeout_s,
            max_ping_failures=options.max_ping_failures,
        )
        found = watcher.discover(options.discover_timeout_s)
        log.info("joined Ray at %s: %d node(s), %d device(s)", address, len(found), len(backend.devices()))
        return cls(backend, watcher, owns_ray)

    def attach(self, pool: PoolService, agent: NodeAgent | None = None) -> ClusterMode:
        """Route `agent`'s workloads to their nodes and start watching membership for `pool`."""
        self.pool = pool
        if agent is not None:

            def node_of(claim_id: str) -> str:
                claim = pool.store.get_claim(claim_id)
                return claim.bindings[0].node if claim.bindings else ""

            agent.supervisor = ClusterSupervisor(agent.supervisor.log_dir, self.backend, node_of)
        self.watcher.attach(pool)
        self.watcher.start()
        return self

    @staticmethod
    def agent_options(options: AgentOptions | None) -> AgentOptions:
        """The control plane's agent settings in cluster mode: no MPS daemons and no memory watchdog
        here, since the processes run on other nodes (their pids mean nothing on this host)."""
        return replace(
            options or AgentOptions(), mps=MpsMode.OFF, watchdog=WatchdogMode.OFF, watch_unclaimed=False
        )

    def nodes(self) -> list[NodePublic]:
        """Every node seen, lost ones included (with why), for `GET /v1/nodes`."""
        return [_public(record) for record in self.backend.records()]

    def ray_node_id(self, node: str) -> str | None:
        record = self.backend.get(node)
        return record.ray_node_id if record is not None else None

    def close(self) -> None:
        """Stop the watcher and every agent actor; leave Ray if this process joined it."""
        self.watcher.stop()
        self.backend.close()
        if self.owns_ray:
            import ray

            ray.shutdown()


def _public(record: NodeRecord) -> NodePublic:
    return NodePublic(
        name=record.name,
        state=record.state,
        devices=len(record.devices),
        models=sorted({d.model for d in record.devices}),
        launch="remote",
        ray_node_id=record.ray_node_id,
        address=record.address,
        hostname=record.hostname or None,
        backend=record.backend or None,
        reason=record.reason,
        joined_at=record.joined_at,
        lost_at=record.lost_at,
    )
