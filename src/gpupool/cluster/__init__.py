"""Cluster mode: pool the GPUs of a Ray cluster (one agent actor per node, membership, failures).

Imported only by `gpupool serve --ray` and `gpupool.ray`; Ray itself is imported lazily, so
gpupool installs and serves one machine without it.
"""

from gpupool.cluster.backend import NodeRecord, RayBackend
from gpupool.cluster.labels import NODE_LABEL, SIMULATE_LABEL, node_name, simulate_spec
from gpupool.cluster.membership import MembershipWatcher
from gpupool.cluster.mode import ClusterMode, ClusterOptions
from gpupool.cluster.supervisor import ClusterSupervisor

__all__ = [
    "NODE_LABEL",
    "SIMULATE_LABEL",
    "ClusterMode",
    "ClusterOptions",
    "ClusterSupervisor",
    "MembershipWatcher",
    "NodeRecord",
    "RayBackend",
    "node_name",
    "simulate_spec",
]
