"""Workloads: register, start (detached) or prove (attached), watch, stop and reap them.

Every check on what a tenant sends goes through `trust` first: who a detached workload runs as,
its environment and working directory, and the pid an attached `gpupool run` reports. Each
workload records the agent that runs or watches it; only that agent adopts, reaps, stops or
signals it, so replicas sharing a store never touch each other's processes (a stop asked of
another replica releases the claim, and the owner stops the process when it sees that).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from gpupool.agent import trust
from gpupool.agent.context import AgentContext
from gpupool.agent.mps_keeper import MpsKeeper
from gpupool.agent.run_as import LaunchError
from gpupool.agent.supervisor import Supervisor
from gpupool.agent.telemetry import Telemetry
from gpupool.errors import Conflict, Forbidden, InvalidRequest, NotFound
from gpupool.isolation import procfs
from gpupool.model import ADMIN, Claim, ClaimState, Tenant
from gpupool.model.workload import Workload, WorkloadState

log = logging.getLogger("gpupool.agent")

LOG_CHUNK_BYTES = 1 << 20
"""Most bytes of log one `logs` call returns."""


class Workloads:
    def __init__(
        self, ctx: AgentContext, supervisor: Supervisor, mps: MpsKeeper, telemetry: Telemetry
    ) -> None:
        self.ctx = ctx
        self.supervisor = supervisor
        self.mps = mps
        self.telemetry = telemetry

    # --------------------------------------------------------------- start-up
    def adopt(self) -> None:
        """Keep this agent's workloads that still run (same pid, same start time); close the rest."""
        for workload in self._own_live():
            if workload.pid and procfs.is_alive(workload.pid, workload.pid_start_ticks):
                if workload.detached:
                    log.info("adopted running workload %s (pid %s)", workload.claim_id, workload.pid)
                continue  # an attached one: its `gpupool run` still watches it
            self.finish(workload, WorkloadState.LOST, None, "process gone while the agent was down")

    # ------------------------------------------------------------------ start
    def bound_claim(self, tenant: Tenant, claim_id: str) -> Claim:
        claim = self.ctx.pool.get_claim(tenant, claim_id)
        if claim.state != ClaimState.BOUND:
            raise Conflict(f"claim {claim_id} is {claim.state.value}, not bound")
        return claim

    def launch_env(self, tenant: Tenant, claim_id: str) -> tuple[dict[str, str], dict[str, str]]:
        """(env, hints) for a process the user starts by hand under a bound claim: as for a
        workload, a fractional single-device claim gets its device's MPS daemon started."""
        claim = self.bound_claim(tenant, claim_id)
        with self.ctx.lock:
            return self.mps.launch_env(claim, self._usage_owner(claim))

    def create(
        self,
        tenant: Tenant,
        claim_id: str,
        command: list[str],
        detach: bool,
        cwd: str | None,
        env: dict[str, str],
    ) -> tuple[Workload, dict[str, str], dict[str, str]]:
        """Register a workload for a bound claim; start it when detached. Returns (workload, env,
        hints): for an attached one, what its `gpupool run` must start the command with."""
        ctx = self.ctx
        claim = self.bound_claim(tenant, claim_id)
        # Refused before anything is recorded: a tenant without an OS user runs nothing detached.
        identity = trust.identity_for(self._owner(claim)) if detach else None
        secret, proof_hash = trust.new_secret()
        now = time.time()
        with ctx.lock:
            launch, hints = self.mps.launch_env(claim, _ids(identity) or self._usage_owner(claim))
            launch[trust.SECRET_ENV] = secret
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
                agent=ctx.agent_id,
                run_as=identity.user if identity else None,
                proof_hash=proof_hash,
            )
            ctx.records.add_workload(workload)
            if not detach:
                return workload, launch, hints
            full_env = trust.workload_env(env, launch, hints, identity)
            try:
                pid = self.supervisor.spawn(claim.id, command, cwd, full_env, identity)
            except OSError as exc:
                raise self._not_started(workload, claim, command, cwd, identity, exc) from None
            workload = ctx.records.update_workload(
                claim.id,
                pid=pid,
                pid_start_ticks=procfs.start_ticks(pid),
                state=WorkloadState.RUNNING,
                started_at=now,
            )
            ctx.records.drop_lease(claim.id)  # the agent owns the claim from now on
            details: dict[str, Any] = {"pid": pid, "detached": True, "command": command}
            if identity is not None:
                details["run_as"] = identity.user
            ctx.event("workload.started", claim, details)
            return workload, {}, {}

    def _not_started(
        self,
        workload: Workload,
        claim: Claim,
        command: list[str],
        cwd: str | None,
        identity: trust.RunAs | None,
        exc: OSError,
    ) -> Exception:
        """Close a workload that could not start (its claim is released) and say why."""
        why = exc.strerror or str(exc)
        self.finish(workload, WorkloadState.EXITED, 127, f"could not start: {why}")
        self.ctx.release(claim, f"workload could not start: {why}")
        stage = exc.stage if isinstance(exc, LaunchError) else "exec"
        who = f"user {identity.user!r}" if identity else "the server's user"
        if stage == "cwd":
            return InvalidRequest(
                f"cwd: {cwd!r} is not usable by {who} ({why}); pass a directory it can enter"
            )
        if stage == "identity":
            return Forbidden(f"cannot run as {who}: {why}")
        return InvalidRequest(f"command: cannot start {command[0]!r} as {who}: {why}")

    def _owner(self, claim: Claim) -> Tenant:
        return Tenant(name=ADMIN) if claim.tenant == ADMIN else self.ctx.pool.store.get_tenant(claim.tenant)

    def _usage_owner(self, claim: Claim) -> tuple[int, int] | None:
        """Who a claim's processes run as, when the agent can tell (its tenant's mapped user)."""
        try:
            return _ids(trust.identity_for(self._owner(claim)))
        except (Forbidden, NotFound):
            return None

    # ----------------------------------------------------------------- report
    def report(self, tenant: Tenant, claim_id: str, pid: int | None, exit_code: int | None) -> Workload:
        """An attached `gpupool run` reports its child's pid (proven before it is trusted), then
        its exit code."""
        ctx = self.ctx
        claim = ctx.pool.get_claim(tenant, claim_id)
        with ctx.lock:
            workload = ctx.records.get_workload(claim_id)
            if pid is not None and workload.detached:
                raise Conflict(f"workload {claim_id} was started by the agent; its pid is not reported")
            if pid is not None and workload.state == WorkloadState.STARTING:
                refused = trust.prove_pid(pid, workload.proof_hash, workload.created_at)
                if refused is not None:
                    ctx.event(
                        "workload.pid_refused", claim, {"pid": pid, "by": tenant.name, "reason": refused}
                    )
                    raise Forbidden(f"pid {pid} is not proven to be this workload's process: {refused}")
                workload = ctx.records.update_workload(
                    claim_id,
                    pid=pid,
                    pid_start_ticks=procfs.start_ticks(pid),
                    state=WorkloadState.RUNNING,
                    started_at=time.time(),
                    agent=ctx.agent_id,  # the agent that proved it watches it
                )
                ctx.event("workload.started", claim, {"pid": pid, "detached": False})
            if exit_code is not None and not self.finish(
                workload, WorkloadState.EXITED, exit_code, f"exited with code {exit_code}"
            ):
                workload = ctx.records.get_workload(claim_id)
                if workload.exit_code is None:
                    ctx.records.update_workload(claim_id, exit_code=exit_code)
            return ctx.records.get_workload(claim_id)

    # ------------------------------------------------------------------ reads
    def list_for(self, tenant: Tenant) -> list[Workload]:
        return self.ctx.records.list_workloads(tenant=None if tenant.is_admin else tenant.name)

    def get(self, tenant: Tenant, claim_id: str) -> Workload:
        self.ctx.pool.get_claim(tenant, claim_id)  # ownership check
        return self.ctx.records.get_workload(claim_id)

    def read_log(self, tenant: Tenant, claim_id: str, offset: int) -> tuple[bytes, int, bool]:
        """(bytes from `offset`, next offset, done) of a detached workload's log."""
        workload = self.get(tenant, claim_id)
        if not workload.log_path:
            raise NotFound(f"claim {claim_id} runs attached to its `gpupool run`; its output went there")
        if not self.ctx.owns(workload):
            raise NotFound(f"workload {claim_id} runs under agent {workload.agent}; its log is kept there")
        path = Path(workload.log_path)
        data = b""
        if path.exists():
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read(LOG_CHUNK_BYTES)
        next_offset = offset + len(data)
        done = not workload.state.is_live and (not path.exists() or next_offset >= path.stat().st_size)
        return data, next_offset, done

    # ------------------------------------------------------------------- stop
    def stop(self, tenant: Tenant, claim_id: str) -> Workload:
        """SIGTERM the workload, SIGKILL after the grace period; its claim is released when it ends.
        A workload of another agent is stopped by releasing its claim: its agent sees that."""
        ctx = self.ctx
        workload = self.get(tenant, claim_id)
        if workload.state.is_live:
            with ctx.lock:
                claim = ctx.pool.store.get_claim(claim_id)
                if not ctx.owns(workload):
                    if claim.state.is_active:
                        ctx.release(claim, f"stopped by {tenant.name}")
                elif self.supervisor.begin_stop(
                    workload, time.time(), ctx.options.stop_grace_s, f"stopped by {tenant.name}"
                ):
                    ctx.event(
                        "workload.stopping", claim, {"by": tenant.name, "grace_s": ctx.options.stop_grace_s}
                    )
        return ctx.records.get_workload(claim_id)

    def reap(self, now: float) -> None:
        """Notice this agent's ended workloads (their claims are released) and stop the ones
        whose claim ended or is being preempted."""
        ctx = self.ctx
        for workload in self._own_live():
            claim = ctx.pool.store.get_claim(workload.claim_id)
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
                    ctx.release(claim, f"workload {reason}")
                self.finish(workload, state, code, reason)
                continue
            if not claim.state.is_active and workload.pid is None:
                # Registered but never started (its `gpupool run` died first): nothing to stop.
                self.finish(workload, WorkloadState.LOST, None, f"claim {claim.state.value} before start")
                continue
            if not claim.state.is_active:
                why = f"claim {claim.state.value}" + (f": {claim.reason}" if claim.reason else "")
                if self.supervisor.begin_stop(workload, now, ctx.options.stop_grace_s, why):
                    ctx.event("workload.stopping", claim, {"reason": why})
            elif claim.preempting and workload.detached:
                # Preempted: SIGTERM now, SIGKILL at the claim's deadline; the claim ends (as
                # `preempted`) when the process has exited, so its devices are free by then.
                grace = max(0.0, (claim.preempt_deadline or now) - now)
                if self.supervisor.begin_stop(workload, now, grace, f"preempted: {claim.reason}"):
                    ctx.event(
                        "workload.stopping", claim, {"reason": claim.reason, "grace_s": round(grace, 3)}
                    )
            if self.supervisor.escalate(workload, now):
                ctx.event(
                    "workload.killed", claim, {"pid": workload.pid, "after_s": ctx.options.stop_grace_s}
                )

    def shutdown(self) -> None:
        """Stop this agent's detached workloads (SIGTERM, SIGKILL after a short grace)."""
        live = [w for w in self._own_live() if w.detached]
        now = time.time()
        grace = min(self.ctx.options.stop_grace_s, 5.0)
        for workload in live:
            self.supervisor.begin_stop(workload, now, grace, "server shutting down")
        deadline = now + grace
        while time.time() < deadline and any(not self.supervisor.exit_code(w)[0] for w in live):
            time.sleep(0.1)
        self.supervisor.kill_all(live)
        for workload in live:
            self.finish(workload, WorkloadState.STOPPED, None, "server shutting down")

    def finish(self, workload: Workload, state: WorkloadState, exit_code: int | None, reason: str) -> bool:
        """Record a workload's end once (with its event); False if someone recorded it already."""
        self.supervisor.forget(workload.claim_id)
        self.telemetry.forget(workload.claim_id)
        if not self.ctx.records.end_workload(workload.claim_id, state, exit_code, reason):
            return False
        details: dict[str, Any] = {"reason": reason}
        if exit_code is not None:
            details["exit_code"] = exit_code
        self.ctx.pool.store.add_event(
            "agent", f"workload.{state.value}", workload.claim_id, workload.tenant, details
        )
        return True

    def _own_live(self) -> list[Workload]:
        return [w for w in self.ctx.records.list_workloads(live_only=True) if self.ctx.owns(w)]


def _ids(identity: trust.RunAs | None) -> tuple[int, int] | None:
    return None if identity is None else (identity.uid, identity.gid)
