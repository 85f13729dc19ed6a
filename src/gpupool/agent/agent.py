"""The node agent inside `gpupool serve`: leases, workloads, telemetry, watchdog, idle and MPS.

It runs a loop over small periodic events (see `events`) in one background thread. Calls from
the API and the events are serialised by one lock, so the supervisor and the per-claim memory
of the agent are never touched by two threads at once.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

from gpupool.agent.events import (
    AgentEvent,
    IdleReclaimEvent,
    LeaseReaperEvent,
    MpsHealthEvent,
    TelemetryEvent,
    WatchdogEvent,
    WorkloadReaperEvent,
)
from gpupool.agent.options import AgentOptions, MpsMode
from gpupool.agent.supervisor import Supervisor
from gpupool.agent.usage import USAGE_ENV, DeclaredUsage, read_usage, usage_path
from gpupool.config import data_dir
from gpupool.devices import SimulatedBackend
from gpupool.errors import Conflict, InvalidRequest, NotFound
from gpupool.isolation import (
    MpsError,
    MpsManager,
    Watchdog,
    find_overuse,
    framework_hints,
    launch_env,
    procfs,
)
from gpupool.model import Claim, ClaimState, DeviceTelemetry, Tenant
from gpupool.model.workload import Lease, Workload, WorkloadState
from gpupool.pool import PoolService
from gpupool.store.runtime import RuntimeRecords

log = logging.getLogger("gpupool.agent")

ACTOR = "agent"
LOG_CHUNK_BYTES = 1 << 20
"""Most bytes of log one `logs` call returns."""


class NodeAgent:
    def __init__(self, pool: PoolService, options: AgentOptions | None = None) -> None:
        self.pool = pool
        self.options = options or AgentOptions()
        self.state_dir = self.options.state_dir or data_dir() / "state"
        self.records = RuntimeRecords(pool.store)
        self.supervisor = Supervisor(self.state_dir / "workloads")
        self.simulated = pool.backend if isinstance(pool.backend, SimulatedBackend) else None
        self.mps = MpsManager(self.state_dir, self.options.mps_control) if self._mps_wanted() else None
        self.watchdog = Watchdog(self.options.watchdog, self.options.watchdog_grace_s)
        self.latest: list[DeviceTelemetry] = []
        self.owner_of_pid: dict[int, str] = {}
        self.declared: dict[str, DeclaredUsage] = {}
        self._simulated_set: set[tuple[str, int]] = set()
        self._last_active: dict[str, float] = {}
        self._started_at = time.time()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        o = self.options
        self.events: list[AgentEvent] = [
            LeaseReaperEvent(self, o.reaper_interval_s),
            WorkloadReaperEvent(self, o.reaper_interval_s),
            TelemetryEvent(self, o.telemetry_interval_s),
            WatchdogEvent(self, o.telemetry_interval_s),
            IdleReclaimEvent(self, max(o.reaper_interval_s, 1.0)),
        ]
        if self.mps is not None:
            self.events.append(MpsHealthEvent(self, o.mps_check_interval_s))

    def _mps_wanted(self) -> bool:
        mode = self.options.mps
        if mode == MpsMode.AUTO:
            return self.simulated is None and shutil.which(self.options.mps_control) is not None
        return mode == MpsMode.ON

    # --------------------------------------------------------------- lifecycle
    def start(self) -> NodeAgent:
        """Adopt or close workloads left by a previous run, then start the event loop thread."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._adopt_workloads()
        self._thread = threading.Thread(target=self._loop, name="gpupool-agent", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop the loop; stop detached workloads (SIGTERM, SIGKILL after grace) and MPS daemons."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            live = [w for w in self.records.list_workloads(live_only=True) if w.detached]
            now = time.time()
            grace = min(self.options.stop_grace_s, 5.0)
            for workload in live:
                self.supervisor.begin_stop(workload, now, grace, "server shutting down")
            deadline = now + grace
            while time.time() < deadline and any(not self.supervisor.exit_code(w)[0] for w in live):
                time.sleep(0.1)
            self.supervisor.kill_all(live)
            for workload in live:
                self._finish(workload, WorkloadState.STOPPED, None, "server shutting down")
            if self.mps is not None:
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
                with self._lock:
                    event.run(now)
            except Exception:
                log.exception("agent event %s failed; the loop goes on", event.NAME)

    def _adopt_workloads(self) -> None:
        for workload in self.records.list_workloads(live_only=True):
            if workload.detached and workload.pid and procfs.is_alive(workload.pid, workload.pid_start_ticks):
                log.info("adopted running workload %s (pid %s)", workload.claim_id, workload.pid)
                continue
            if (
                not workload.detached
                and workload.pid
                and procfs.is_alive(workload.pid, workload.pid_start_ticks)
            ):
                continue  # its `gpupool run` still watches it
            self._finish(workload, WorkloadState.LOST, None, "process gone while the agent was down")

    # ------------------------------------------------------------------ leases
    def renew_lease(self, tenant: Tenant, claim_id: str) -> tuple[Lease, Claim]:
        """Push out a claim's lease by the server's TTL; an ended claim's lease is dropped."""
        claim = self.pool.get_claim(tenant, claim_id)
        if not claim.state.is_active:
            self.records.drop_lease(claim_id)
            return Lease(claim_id, self.options.lease_ttl_s, 0.0), claim
        return self.records.renew_lease(claim_id, self.options.lease_ttl_s), claim

    def reap_expired_leases(self, now: float) -> None:
        for lease in self.records.expired_leases(now):
            self.records.drop_lease(lease.claim_id)
            try:
                claim = self.pool.store.get_claim(lease.claim_id)
            except NotFound:
                continue
            if claim.state.is_active:
                late = now - lease.expires_at + lease.ttl_s
                self._release(claim, f"lease expired: no heartbeat for {late:.1f}s (ttl {lease.ttl_s:g}s)")
                self._event("agent.lease_expired", claim, {"ttl_s": lease.ttl_s, "was": claim.state.value})

    # --------------------------------------------------------------- workloads
    def _bound_claim(self, tenant: Tenant, claim_id: str) -> Claim:
        claim = self.pool.get_claim(tenant, claim_id)
        if claim.state != ClaimState.BOUND:
            raise Conflict(f"claim {claim_id} is {claim.state.value}, not bound")
        return claim

    def launch_env(self, tenant: Tenant, claim_id: str) -> tuple[dict[str, str], dict[str, str]]:
        """(env, hints) for a process the user starts by hand under a bound claim: as for a
        workload, a fractional single-device claim gets its device's MPS daemon started."""
        claim = self._bound_claim(tenant, claim_id)
        with self._lock:
            return self._launch_env(claim)

    def create_workload(
        self,
        tenant: Tenant,
        claim_id: str,
        command: list[str],
        detach: bool,
        cwd: str | None,
        env: dict[str, str],
    ) -> tuple[Workload, dict[str, str], dict[str, str]]:
        """Register a workload for a bound claim; start it when detached. Returns (workload, env, hints)."""
        claim = self._bound_claim(tenant, claim_id)
        now = time.time()
        with self._lock:
            launch, hints = self._launch_env(claim)
            workload = Workload(
                claim_id=claim.id,
                tenant=claim.tenant,
                node=claim.bindings[0].node if claim.bindings else "",
                command=tuple(command),
                detached=detach,
                state=WorkloadState.STARTING,
                cwd=cwd,
                created_at=now,
                log_path=str(self.supervisor.log_path(claim.id)) if detach else None,
            )
            self.records.add_workload(workload)
            if not detach:
                return workload, launch, hints
            full_env = {**hints, **(env or dict(os.environ)), **launch}
            try:
                pid = self.supervisor.spawn(claim.id, command, cwd, full_env)
            except OSError as exc:
                why = exc.strerror or str(exc)
                self._finish(workload, WorkloadState.EXITED, 127, f"could not start: {why}")
                self._release(claim, f"workload could not start: {why}")
                raise InvalidRequest(f"command: cannot start {command[0]!r}: {why}") from None
            workload = self.records.update_workload(
                claim.id,
                pid=pid,
                pid_start_ticks=procfs.start_ticks(pid),
                state=WorkloadState.RUNNING,
                started_at=now,
            )
            self.records.drop_lease(claim.id)  # the agent owns the claim from now on
            self._event("workload.started", claim, {"pid": pid, "detached": True, "command": command})
            return workload, {}, {}

    def update_workload(
        self, tenant: Tenant, claim_id: str, pid: int | None, exit_code: int | None
    ) -> Workload:
        """An attached `gpupool run` reports its child's pid, then its exit code."""
        claim = self.pool.get_claim(tenant, claim_id)
        with self._lock:
            workload = self.records.get_workload(claim_id)
            if pid is not None and workload.state == WorkloadState.STARTING:
                workload = self.records.update_workload(
                    claim_id,
                    pid=pid,
                    pid_start_ticks=procfs.start_ticks(pid),
                    state=WorkloadState.RUNNING,
                    started_at=time.time(),
                )
                self._event("workload.started", claim, {"pid": pid, "detached": False})
            if exit_code is not None and not self._finish(
                workload, WorkloadState.EXITED, exit_code, f"exited with code {exit_code}"
            ):
                workload = self.records.get_workload(claim_id)
                if workload.exit_code is None:
                    self.records.update_workload(claim_id, exit_code=exit_code)
            return self.records.get_workload(claim_id)

    def workloads(self, tenant: Tenant) -> list[Workload]:
        return self.records.list_workloads(tenant=None if tenant.is_admin else tenant.name)

    def workload(self, tenant: Tenant, claim_id: str) -> Workload:
        self.pool.get_claim(tenant, claim_id)  # ownership check
        return self.records.get_workload(claim_id)

    def processes(self, claim_id: str) -> list[tuple[int, str, int]]:
        """(pid, device uuid, used memory bytes) of a claim's processes at the last sample."""
        return [
            (p.pid, sample.uuid, p.used_memory_bytes)
            for sample in self.latest
            for p in sample.processes
            if self.owner_of_pid.get(p.pid) == claim_id
        ]

    def read_log(self, tenant: Tenant, claim_id: str, offset: int) -> tuple[bytes, int, bool]:
        """(bytes from `offset`, next offset, done) of a detached workload's log."""
        workload = self.workload(tenant, claim_id)
        if not workload.log_path:
            raise NotFound(f"claim {claim_id} runs attached to its `gpupool run`; its output went there")
        path = Path(workload.log_path)
        data = b""
        if path.exists():
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(LOG_CHUNK_BYTES)
        next_offset = offset + len(data)
        done = not workload.state.is_live and (not path.exists() or next_offset >= path.stat().st_size)
        return data, next_offset, done

    def stop_workload(self, tenant: Tenant, claim_id: str) -> Workload:
        """SIGTERM the workload, SIGKILL after the grace period; its claim is released when it ends."""
        workload = self.workload(tenant, claim_id)
        if workload.state.is_live:
            with self._lock:
                claim = self.pool.store.get_claim(claim_id)
                if self.supervisor.begin_stop(
                    workload, time.time(), self.options.stop_grace_s, f"stopped by {tenant.name}"
                ):
                    self._event(
                        "workload.stopping", claim, {"by": tenant.name, "grace_s": self.options.stop_grace_s}
                    )
        return self.records.get_workload(claim_id)

    def reap_workloads(self, now: float) -> None:
        for workload in self.records.list_workloads(live_only=True):
            claim = self.pool.store.get_claim(workload.claim_id)
            ended, code = self.supervisor.exit_code(workload)
            if ended:
                stopping = self.supervisor.stopping(workload.claim_id)
                if stopping is not None:
                    state, reason = WorkloadState.STOPPED, stopping.reason
                elif code is not None:
                    state, reason = WorkloadState.EXITED, f"exited with code {code}"
                else:
                    state, reason = WorkloadState.EXITED, "process gone"
                # Claim first: whoever sees the workload ended also sees its claim released.
                if claim.state.is_active:
                    self._release(claim, f"workload {reason}")
                self._finish(workload, state, code, reason)
                continue
            if not claim.state.is_active and workload.pid is None:
                # Registered but never started (its `gpupool run` died first): nothing to stop.
                self._finish(workload, WorkloadState.LOST, None, f"claim {claim.state.value} before start")
                continue
            if not claim.state.is_active:
                why = f"claim {claim.state.value}" + (f": {claim.reason}" if claim.reason else "")
                if self.supervisor.begin_stop(workload, now, self.options.stop_grace_s, why):
                    self._event("workload.stopping", claim, {"reason": why})
            elif claim.preempting and workload.detached:
                # Preempted: SIGTERM now, SIGKILL at the claim's deadline; the claim ends (as
                # `preempted`) when the process has exited, so its devices are free by then.
                grace = max(0.0, (claim.preempt_deadline or now) - now)
                if self.supervisor.begin_stop(workload, now, grace, f"preempted: {claim.reason}"):
                    details = {"reason": claim.reason, "grace_s": round(grace, 3)}
                    self._event("workload.stopping", claim, details)
            if self.supervisor.escalate(workload, now):
                self._event(
                    "workload.killed", claim, {"pid": workload.pid, "after_s": self.options.stop_grace_s}
                )

    def _finish(self, workload: Workload, state: WorkloadState, exit_code: int | None, reason: str) -> bool:
        """Record a workload's end once (with its event); False if someone recorded it already."""
        self.supervisor.forget(workload.claim_id)
        self._clear_simulated(workload.claim_id)
        if not self.records.end_workload(workload.claim_id, state, exit_code, reason):
            return False
        details: dict[str, Any] = {"reason": reason}
        if exit_code is not None:
            details["exit_code"] = exit_code
        self.pool.store.add_event(
            ACTOR, f"workload.{state.value}", workload.claim_id, workload.tenant, details
        )
        return True

    # -------------------------------------------------------------- isolation
    def _launch_env(self, claim: Claim) -> tuple[dict[str, str], dict[str, str]]:
        """(environment to set, framework hints to default) for a workload of a bound claim."""
        env = launch_env(claim)
        totals = {d.uuid: d.memory_total_bytes for d in self.pool.devices}
        hints = framework_hints(claim, totals)
        shared = [b for b in claim.bindings if not b.whole_device and not b.missing]
        if self.mps is not None and shared:
            if len(claim.bindings) == 1:
                device = shared[0].device_uuid
                fresh = device not in self.mps.running()
                try:
                    env.update(self.mps.ensure(device))
                except MpsError as exc:
                    self._event("mps.unavailable", claim, {"device": device, "error": str(exc)})
                else:
                    if fresh:
                        self._event("mps.started", claim, {"device": device})
            else:
                # One CUDA client reaches one MPS daemon; a claim over several devices runs without.
                self._event("mps.skipped", claim, {"reason": "fractional claim over several devices"})
        if self.simulated is not None:
            path = usage_path(self.state_dir, claim.id)
            path.parent.mkdir(parents=True, exist_ok=True)
            env[USAGE_ENV] = str(path)
        return env, hints

    def check_mps(self, now: float) -> None:
        if self.mps is None:
            return
        bound = self.pool.store.list_claims(states=[ClaimState.BOUND], limit=100_000)
        needed = {b.device_uuid for c in bound for b in c.bindings if not b.whole_device}
        for device in self.mps.running():
            if device not in needed:
                self.mps.stop(device)
                self.pool.store.add_event(
                    ACTOR, "mps.stopped", details={"device": device, "reason": "no shared claim"}
                )
                continue
            problem = self.mps.check(device)
            if problem is None:
                continue
            affected = sorted(c.id for c in bound if any(b.device_uuid == device for b in c.bindings))
            self.pool.store.add_event(
                ACTOR, "mps.fault", details={"device": device, "problem": problem, "claims": affected}
            )
            try:
                self.mps.recover(device)
            except MpsError as exc:
                self.pool.store.add_event(
                    ACTOR, "mps.recover_failed", details={"device": device, "error": str(exc)}
                )
            else:
                self.pool.store.add_event(
                    ACTOR, "mps.recovered", details={"device": device, "claims": affected}
                )

    # -------------------------------------------------------------- telemetry
    def sample_telemetry(self, now: float) -> None:
        live = [w for w in self.records.list_workloads(live_only=True) if w.pid is not None]
        roots = {w.pid: w.claim_id for w in live if w.pid is not None}
        if self.simulated is not None:
            self._sync_simulated(live)
        owners = {pid: roots[root] for pid, root in procfs.owners(roots).items()}
        for claim_id, usage in self.declared.items():
            if usage.pid is not None:
                owners.setdefault(usage.pid, claim_id)
        self.owner_of_pid = owners
        self.latest = self.pool.backend.telemetry()

    def _sync_simulated(self, live: list[Workload]) -> None:
        assert self.simulated is not None
        wanted: dict[tuple[str, int], DeclaredUsage] = {}
        declared: dict[str, DeclaredUsage] = {}
        for workload in live:
            usage = read_usage(usage_path(self.state_dir, workload.claim_id))
            if usage is None or workload.pid is None:
                continue
            declared[workload.claim_id] = usage
            claim = self.pool.store.get_claim(workload.claim_id)
            for binding in claim.bindings:
                wanted[(binding.device_uuid, usage.pid or workload.pid)] = usage
        for device, pid in self._simulated_set - set(wanted):
            self.simulated.clear_process(device, pid)
        for (device, pid), usage in wanted.items():
            self.simulated.set_process(device, pid, usage.memory_bytes, usage.utilization_percent)
        self._simulated_set = set(wanted)
        self.declared = declared

    def _clear_simulated(self, claim_id: str) -> None:
        usage = self.declared.pop(claim_id, None)
        if self.simulated is None or usage is None:
            return
        claim = self.pool.store.get_claim(claim_id)
        for binding in claim.bindings:
            for key in [k for k in self._simulated_set if k[0] == binding.device_uuid]:
                if self.owner_of_pid.get(key[1]) == claim_id or key[1] == usage.pid:
                    self.simulated.clear_process(*key)
                    self._simulated_set.discard(key)

    def enforce_memory(self, now: float) -> None:
        claim_ids = set(self.owner_of_pid.values())
        if not claim_ids:
            self.watchdog.enforce([], now)
            return
        claims = {
            c.id: c
            for c in self.pool.store.list_claims(states=[ClaimState.BOUND], limit=100_000)
            if c.id in claim_ids
        }
        limits = {(c.id, b.device_uuid): b.memory_bytes for c in claims.values() for b in c.bindings}
        owners = {pid: claim_id for pid, claim_id in self.owner_of_pid.items() if claim_id in claims}
        for action in self.watchdog.enforce(find_overuse(self.latest, owners, limits), now):
            over = action.overuse
            self._event(
                f"watchdog.{action.action}",
                claims[over.claim_id],
                {
                    "pid": over.pid,
                    "device": over.device_uuid,
                    "used_memory_bytes": over.used_memory_bytes,
                    "limit_bytes": over.limit_bytes,
                    "mode": self.watchdog.mode.value,
                },
            )

    # ------------------------------------------------------------------- idle
    def idle_timeout_for(self, tenant_name: str) -> float | None:
        """Seconds of no activity after which a tenant's claim is reclaimed; None means never."""
        overrides = self.records.idle_timeouts([tenant_name])
        value = overrides.get(tenant_name)
        chosen = value if value is not None else self.options.idle_timeout_s
        return chosen or None

    def reclaim_idle(self, now: float) -> None:
        bound = self.pool.store.list_claims(states=[ClaimState.BOUND], limit=100_000)
        overrides = self.records.idle_timeouts()
        utilization = {s.uuid: s.utilization_percent for s in self.latest}
        for claim in bound:
            if self._is_active(claim, utilization):
                self._last_active[claim.id] = now
                continue
            override = overrides.get(claim.tenant)
            timeout = (override if override is not None else self.options.idle_timeout_s) or None
            if timeout is None:
                continue
            since = max(claim.bound_at or now, self._started_at, self._last_active.get(claim.id, 0.0))
            if now - since >= timeout:
                self._release(
                    claim, f"idle: no GPU activity for {now - since:.0f}s (idle timeout {timeout:g}s)"
                )
                self._event(
                    "agent.idle_reclaim", claim, {"idle_s": round(now - since, 1), "timeout_s": timeout}
                )
        bound_ids = {c.id for c in bound}
        self._last_active = {k: v for k, v in self._last_active.items() if k in bound_ids}

    def _is_active(self, claim: Claim, utilization: dict[str, float]) -> bool:
        threshold = self.options.idle_utilization_percent
        if self.simulated is not None:
            # Simulated device utilization is noise that follows allocation; only what the
            # claim's own processes declare is activity.
            usage = self.declared.get(claim.id)
            return usage is not None and usage.utilization_percent > threshold
        # Real devices: device utilization (shared devices: any activity keeps every claim there).
        # A device with no sample is never judged idle (libvirt's GPUs, held by VMs, report none).
        return any(utilization.get(b.device_uuid, math.inf) > threshold for b in claim.bindings)

    def set_idle_timeout(self, tenant: Tenant, name: str, seconds: float | None) -> None:
        self.pool.require_admin(tenant)
        if name not in {t.name for t in self.pool.store.list_tenants()}:
            raise NotFound(f"tenant {name!r} not found")
        self.records.set_idle_timeout(name, seconds)
        self.pool.store.add_event(
            tenant.name, "tenant.idle_timeout", tenant=name, details={"seconds": seconds}
        )

    def get_idle_timeout(self, tenant: Tenant, name: str) -> tuple[float | None, float | None]:
        """(the tenant's own setting, the effective timeout) in seconds."""
        if not tenant.is_admin and tenant.name != name:
            raise NotFound(f"tenant {name!r} not found")
        return self.records.idle_timeouts([name]).get(name), self.idle_timeout_for(name)

    # ---------------------------------------------------------------- helpers
    def _release(self, claim: Claim, reason: str) -> None:
        self.pool.store.end_claim(claim.id, ClaimState.RELEASED, actor=ACTOR, reason=reason)
        self.records.drop_lease(claim.id)
        self.pool.schedule()

    def _event(self, action: str, claim: Claim, details: dict[str, Any]) -> None:
        self.pool.store.add_event(ACTOR, action, claim.id, claim.tenant, details)
