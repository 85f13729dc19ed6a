"""A real local Ray cluster for tests: head + workers with simulated GPU labels, on private ports.

Ports: every node gets its own worker port range drawn per run above Ray's default worker range
(10002-19999), so two runs on one machine never collide. Processes are stopped only through
`Cluster.remove_node` / `Cluster.shutdown`, which kill the PIDs this cluster started (never
`ray stop`, which kills every Ray process on the machine by name).
"""

from __future__ import annotations

import logging
import random
import socket
from dataclasses import dataclass, field
from typing import Any

from ray.cluster_utils import Cluster

from gpupool.cluster import NODE_LABEL, SIMULATE_LABEL

PORTS_PER_NODE = 40
PORT_LOW, PORT_HIGH = 20_000, 60_000


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_base(slots: int = 8) -> int:
    """A base port whose next `slots * PORTS_PER_NODE` ports look free (random per run)."""
    for _ in range(50):
        base = random.randrange(PORT_LOW, PORT_HIGH - slots * PORTS_PER_NODE, PORTS_PER_NODE)
        if all(_free(base + offset) for offset in range(0, slots * PORTS_PER_NODE, 7)):
            return base
    raise RuntimeError("no free port range found for the Ray test cluster")


@dataclass
class LocalRayCluster:
    """Head `head` plus named workers; `nodes[name]` is the Ray node object of each."""

    head_spec: str = "2xH100-80GB"
    base: int = field(default_factory=port_base)
    cluster: Any = None
    nodes: dict[str, Any] = field(default_factory=dict)
    _slot: int = 0

    def _ports(self) -> dict[str, int]:
        low = self.base + self._slot * PORTS_PER_NODE
        self._slot += 1
        return {"min_worker_port": low + 10, "max_worker_port": low + PORTS_PER_NODE - 1}

    def _labels(self, name: str, spec: str) -> dict[str, str]:
        return {NODE_LABEL: name, SIMULATE_LABEL: spec}

    def start(self) -> LocalRayCluster:
        head = {
            "num_cpus": 1,
            "include_dashboard": False,
            "gcs_server_port": self.base,
            "dashboard_agent_listen_port": self.base + 1,
            "labels": self._labels("head", self.head_spec),
            **self._ports(),
        }
        self.cluster = Cluster(initialize_head=True, head_node_args=head)
        self.nodes["head"] = self.cluster.head_node
        return self

    def add(self, name: str, spec: str) -> Any:
        """Start a worker node named `name` with `spec` GPUs (e.g. 4xA100-40GB); wait until it is up."""
        node = self.cluster.add_node(num_cpus=1, labels=self._labels(name, spec), **self._ports())
        self.nodes[name] = node
        return node

    def kill(self, name: str) -> Any:
        """Remove a worker non-gracefully (SIGKILL of its processes, by their PIDs)."""
        node = self.nodes.pop(name)
        self.cluster.remove_node(node, allow_graceful=False)
        return node

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def connect(self) -> None:
        import ray

        ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)

    def shutdown(self) -> None:
        import ray

        ray.shutdown()
        if self.cluster is not None:
            self.cluster.shutdown()
