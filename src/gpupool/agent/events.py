"""The agent's periodic events (after SkyPilot's skylet): each a tiny class with a NAME, an
interval and one `run`. The loop runs them in order; one failing event is logged and the loop
lives on. Each event only calls the part of the agent that does its job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar


class AgentEvent:
    """Runs `run(now)` every `interval_s` seconds (epoch seconds in, nothing out)."""

    NAME: ClassVar[str] = "event"

    def __init__(self, job: Callable[[float], None] | None, interval_s: float) -> None:
        self.job = job
        self.interval_s = interval_s
        self.next_run_at = 0.0

    def run(self, now: float) -> None:
        if self.job is None:
            raise NotImplementedError
        self.job(now)


class LeaseReaperEvent(AgentEvent):
    """Release claims whose client stopped heartbeating (e.g. `gpupool run` was kill -9'd)."""

    NAME = "lease-reaper"


class WorkloadReaperEvent(AgentEvent):
    """Notice ended workload processes (release their claims) and stop workloads of ended claims."""

    NAME = "workload-reaper"


class TelemetryEvent(AgentEvent):
    """Sample every device and attribute its processes to claims (simulated usage included)."""

    NAME = "telemetry"


class WatchdogEvent(AgentEvent):
    """Stop a claim's processes that together use more device memory than the claim holds;
    report GPU processes that belong to no claim."""

    NAME = "watchdog"


class IdleReclaimEvent(AgentEvent):
    """Release bound claims with no GPU activity for their tenant's idle timeout."""

    NAME = "idle-reclaim"


class MpsHealthEvent(AgentEvent):
    """Quit MPS daemons nobody needs; detect a broken one and recover it."""

    NAME = "mps-health"
