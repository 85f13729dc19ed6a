"""Workloads (processes started for a claim) and leases (a client's promise to come back)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class WorkloadState(enum.StrEnum):
    STARTING = "starting"  # registered, process not started yet
    RUNNING = "running"
    EXITED = "exited"  # the process ended by itself; `exit_code` says how
    STOPPED = "stopped"  # gpupool ended it (stop, watchdog, claim gone)
    LOST = "lost"  # the process vanished while nobody watched (server restart)

    @property
    def is_live(self) -> bool:
        return self in (WorkloadState.STARTING, WorkloadState.RUNNING)


@dataclass(frozen=True)
class Workload:
    """One process tree run for a claim; its id is the claim id (one workload per claim).

    `detached`: the node agent started it and owns it (logs under the state dir); otherwise a
    `gpupool run` process started it and the agent only watches it.
    """

    claim_id: str
    tenant: str
    node: str
    command: tuple[str, ...]
    detached: bool
    state: WorkloadState
    pid: int | None = None
    pid_start_ticks: int | None = None  # /proc start time, guards against a reused pid
    exit_code: int | None = None
    reason: str = ""
    log_path: str | None = None
    cwd: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    agent: str | None = None  # the node agent that runs or watches it (only it reaps it)
    run_as: str | None = None  # the OS user a detached workload runs as (None: the server's)
    proof_hash: str | None = None  # SHA-256 of the secret its processes carry (pid proof)


@dataclass(frozen=True)
class Lease:
    """A claim kept alive by heartbeats; the agent reclaims it once `expires_at` (epoch s) passes."""

    claim_id: str
    ttl_s: float
    expires_at: float
