"""The node agent inside `gpupool serve`: a loop over small periodic events, and the parts they run.

Each job is one small part with one module (after SkyPilot's skylet):

    leases      Leases          heartbeats of `gpupool run`, reclaim when they stop
    workloads   Workloads       start, prove, watch, stop and reap workload processes
    mps_keeper  MpsKeeper       launch environment of a claim, MPS daemons and their health
    telemetry   Telemetry       device samples, which claim each GPU process belongs to
    memory_guard MemoryGuard    the memory watchdog (per claim) and unclaimed GPU processes
    idle        IdleReclaimer   release claims with no GPU activity

The trust checks (who a workload runs as, its environment, pid proof) all live in `trust`.
The loop runs in one background thread; calls from the API and the events are serialised by
one lock, so no part is touched by two threads at once.
"""

from __future__ import annotations

import logging
import threading
import time

from gpupool.agent.context import AgentContext, agent_id
from gpupool.agent.events import (
    AgentEvent,
    IdleReclaimEvent,
    LeaseReaperEvent,
    MpsHealthEvent,
    TelemetryEvent,
    WatchdogEvent,
    WorkloadReaperEvent,
)
from gpupool.agent.idle import IdleReclaimer
from gpupool.agent.leases import Leases
from gpupool.agent.memory_guard import MemoryGuard
from gpupool.agent.mps_keeper import MpsKeeper
from gpupool.agent.options import AgentOptions
from gpupool.agent.supervisor import Supervisor
from gpupool.agent.telemetry import Telemetry
from gpupool.agent.workloads import Workloads
from gpupool.config import data_dir
from gpupool.model import Claim, Tenant
from gpupool.model.workload import Lease, Workload
from gpupool.pool import PoolService
from gpupool.store.runtime import RuntimeRecords

log = logging.getLogger("gpupool.agent")


class NodeAgent:
    def __init__(self, pool: PoolService, options: AgentOptions | None = None) -> None:
        options = options or AgentOptions()
        state_dir = options.state_dir or data_dir() / "state"
        self.ctx = AgentContext(pool, options, state_dir, agent_id(state_dir), RuntimeRecords(pool.store))
        self.pool = pool
        self.options = options
        self.leases = Leases(self.ctx)
        self.telemetry = Telemetry(self.ctx)
        self.mps = MpsKeeper(self.ctx)
        self.workloads = Workloads(self.ctx, Supervisor(state_dir / "workloads"), self.mps, self.telemetry)
        self.memory = MemoryGuard(self.ctx, self.telemetry)
        self.idle = IdleReclaimer(self.ctx, self.telemetry)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        o = options
        self.events: list[AgentEvent] = [
            LeaseReaperEvent(self.leases.reap_expired, o.reaper_interval_s),
            WorkloadReaperEvent(self.workloads.reap, o.reaper_interval_s),
            TelemetryEvent(self.telemetry.sample, o.telemetry_interval_s),
            WatchdogEvent(self.memory.enforce, o.telemetry_interval_s),
            IdleReclaimEvent(self.idle.reclaim, max(o.reaper_interval_s, 1.0)),
        ]
        if self.mps.mps is not None:
            self.events.append(MpsHealthEvent(self.mps.check, o.mps_check_interval_s))

    @property
    def agent_id(self) -> str:
        return self.ctx.agent_id

    @property
    def supervisor(self) -> Supervisor:
        return self.workloads.supervisor

    @supervisor.setter
    def supervisor(self, supervisor: Supervisor) -> None:
        """Cluster mode routes processes to other nodes with a supervisor of its own."""
        self.workloads.supervisor = supervisor

    # --------------------------------------------------------------- lifecycle
    def start(self) -> NodeAgent:
        """Adopt or close this agent's workloads left by a previous run, then start the loop."""
        self.ctx.state_dir.mkdir(parents=True, exist_ok=True)
        self.workloads.adopt()
        self._thread = threading.Thread(target=self._loop, name="gpupool-agent", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop the loop; stop this agent's detached workloads and the MPS daemons."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self.ctx.lock:
            self.workloads.shutdown()
            self.mps.stop_all()

    def _loop(self) -> None:
        while not self._stop.wait(self.options.tick_s):
            self.tick(time.time())

    def tick(self, now: float) -> None:
        """Run every event that is due; a failing event is logged and the others still run."""
        for event in self.events:
            if now < event.next_run_at:
                continue
            event.next_run_at = now + event.interval_s
            try:
                with self.ctx.lock:
                    event.run(now)
            except Exception:
                log.exception("agent event %s failed; the loop goes on", event.NAME)

    # ------------------------------------------------- the API's calls (facade)
    def renew_lease(self, tenant: Tenant, claim_id: str) -> tuple[Lease, Claim]:
        return self.leases.renew(tenant, claim_id)

    def launch_env(self, tenant: Tenant, claim_id: str) -> tuple[dict[str, str], dict[str, str]]:
        return self.workloads.launch_env(tenant, claim_id)

    def create_workload(
        self,
        tenant: Tenant,
        claim_id: str,
        command: list[str],
        detach: bool,
        cwd: str | None,
        env: dict[str, str],
    ) -> tuple[Workload, dict[str, str], dict[str, str]]:
        return self.workloads.create(tenant, claim_id, command, detach, cwd, env)

    def update_workload(
        self, tenant: Tenant, claim_id: str, pid: int | None, exit_code: int | None
    ) -> Workload:
        return self.workloads.report(tenant, claim_id, pid, exit_code)

    def list_workloads(self, tenant: Tenant) -> list[Workload]:
        return self.workloads.list_for(tenant)

    def workload(self, tenant: Tenant, claim_id: str) -> Workload:
        return self.workloads.get(tenant, claim_id)

    def processes(self, claim_id: str) -> list[tuple[int, str, int]]:
        return self.telemetry.processes(claim_id)

    def read_log(self, tenant: Tenant, claim_id: str, offset: int) -> tuple[bytes, int, bool]:
        return self.workloads.read_log(tenant, claim_id, offset)

    def stop_workload(self, tenant: Tenant, claim_id: str) -> Workload:
        return self.workloads.stop(tenant, claim_id)

    def set_idle_timeout(self, tenant: Tenant, name: str, seconds: float | None) -> None:
        self.idle.set_timeout(tenant, name, seconds)

    def get_idle_timeout(self, tenant: Tenant, name: str) -> tuple[float | None, float | None]:
        return self.idle.get_timeout(tenant, name)
