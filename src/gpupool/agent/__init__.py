"""The node agent: runs workloads on a node, leases, telemetry, watchdog, idle reclaim, MPS."""

from gpupool.agent.agent import NodeAgent
from gpupool.agent.options import AgentOptions, MpsMode
from gpupool.agent.usage import USAGE_ENV

__all__ = ["USAGE_ENV", "AgentOptions", "MpsMode", "NodeAgent"]
