"""The agent's periodic events (after SkyPilot's skylet): each a tiny class with a NAME, an
interval and one `run`. The loop runs them in order; one failing event is logged and the loop
lives on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from gpupool.agent.agent import NodeAgent


class AgentEvent:
    """Runs `run(now)` every `interval_s` seconds (epoch seconds in, nothing out)."""

    NAME: ClassVar[str] = "event"

    def __init__(self, agent: NodeAgent, interval_s: float) -> None:
        self.agent = agent
        self.interval_s = interval_s
        self.next_run_at = 0.0

    def run(self, now: float) -> None:
        raise NotImplementedError


class LeaseReaperEvent(AgentEvent):
    """Release claims whose client stopped heartbeating (e.g. `gpupool run` was kill -9'd)."""

    NAME = "lease-reaper"

    def run(self, now: float) -> None:
        self.agent.reap_expired_leases(now)


class WorkloadReaperEvent(AgentEvent):
    """Notice ended workload processes (release their claims) and stop workloads of ended claims."""

    NAME = "workload-reaper"

    def run(self, now: float) -> None:
        self.agent.reap_workloads(now)


class TelemetryEvent(AgentEvent):
    """Sample every device and attribute its processes to claims (simulated usage included)."""

    NAME = "telemetry"

    def run(self, now: float) -> None:
        self.agent.sample_telemetry(now)


class WatchdogEvent(AgentEvent):
    """Stop processes that use more device memory than their claim holds."""

    NAME = "watchdog"

    def run(self, now: float) -> None:
        self.agent.enforce_memory(now)


class IdleReclaimEvent(AgentEvent):
    """Release bound claims with no GPU activity for their tenant's idle timeout."""

    NAME = "idle-reclaim"

    def run(self, now: float) -> None:
        self.agent.reclaim_idle(now)


class MpsHealthEvent(AgentEvent):
    """Quit MPS daemons nobody needs; detect a broken one and recover it."""

    NAME = "mps-health"

    def run(self, now: float) -> None:
        self.agent.check_mps(now)
