"""The gpupool agent of one Ray node: its devices, telemetry and workload processes.

A plain class, so it can be tested without Ray; `handles.py` wraps it as a Ray actor pinned to
its node. Every method answers quickly (no call blocks on a workload), so pings stay fast.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpupool.agent.launcher import LaunchOutput
from gpupool.cluster.node_devices import open_node_backend
from gpupool.cluster.process_launcher import ProcessLauncher
from gpupool.model import Device, DeviceTelemetry

NODE_ENV = "GPUPOOL_NODE"
RAY_NODE_ENV = "GPUPOOL_RAY_NODE_ID"


@dataclass(frozen=True)
class NodeReport:
    """What an agent tells the control plane when it starts: who it is and what it has."""

    node: str
    ray_node_id: str
    hostname: str
    pid: int
    backend: str
    devices: tuple[Device, ...]


class NodeAgentActor:
    """Runs on its node: the device backend (NVML or simulated) and the workload launcher."""

    def __init__(
        self, node: str, ray_node_id: str, simulate: str | None, work_dir: str | None = None
    ) -> None:
        self.node = node
        self.ray_node_id = ray_node_id
        self.backend = open_node_backend(node, simulate)
        base = Path(work_dir) if work_dir else Path(tempfile.gettempdir()) / "gpupool-agent"
        self.launcher = ProcessLauncher(
            base / f"{node}-{os.getpid()}", {NODE_ENV: node, RAY_NODE_ENV: ray_node_id}
        )

    def report(self) -> NodeReport:
        return NodeReport(
            node=self.node,
            ray_node_id=self.ray_node_id,
            hostname=os.uname().nodename,
            pid=os.getpid(),
            backend=self.backend.name,
            devices=tuple(self.backend.devices()),
        )

    def ping(self) -> float:
        """The node's clock, epoch seconds (a liveness answer)."""
        return time.time()

    def telemetry(self) -> list[DeviceTelemetry]:
        return self.backend.telemetry()

    def note_allocations(self, allocations: Mapping[str, tuple[int, int]]) -> None:
        self.backend.note_allocations(allocations)

    def start(
        self,
        claim_id: str,
        command: Sequence[str],
        cwd: str | None,
        env: Mapping[str, str],
        run_as: str | None = None,
    ) -> int:
        return self.launcher.start(claim_id, command, cwd, env, run_as)

    def poll(self, claim_id: str, offset: int, max_bytes: int) -> LaunchOutput:
        return self.launcher.poll(claim_id, offset, max_bytes)

    def signal(self, claim_id: str, signum: int) -> bool:
        return self.launcher.signal(claim_id, signum)

    def reset(self) -> int:
        """Kill every workload (the control plane declared this node lost); how many were killed."""
        return self.launcher.stop_all()
