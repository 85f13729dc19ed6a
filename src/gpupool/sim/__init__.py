"""Trace-driven cluster simulator: replays openb-schema CSVs through the real scheduler code."""

from gpupool.sim.engine import RunResult, replay
from gpupool.sim.trace import NodeTable, PodTable, read_nodes, read_pods

__all__ = ["NodeTable", "PodTable", "RunResult", "read_nodes", "read_pods", "replay"]
