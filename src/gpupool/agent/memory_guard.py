"""The watchdog event's job: stop a claim's processes when together they use more device memory
than the claim holds, and report GPU processes that belong to no claim.

Only claims whose workload this agent runs or watches are judged (a replica judges its own), and
only their proven processes are signalled. A process on a pooled device that belongs to no claim
is reported once (event `agent.unclaimed_process`, gauge `gpupool_unclaimed_gpu_processes`);
stopping it is the admin's choice (`serve --kill-unclaimed`), off by default.
"""

from __future__ import annotations

import contextlib
import os
import signal

from gpupool.agent.context import AgentContext
from gpupool.agent.telemetry import Telemetry
from gpupool.isolation import Watchdog, find_overuse, procfs
from gpupool.model import ClaimState


class MemoryGuard:
    def __init__(self, ctx: AgentContext, telemetry: Telemetry) -> None:
        self.ctx = ctx
        self.telemetry = telemetry
        self.watchdog = Watchdog(ctx.options.watchdog, ctx.options.watchdog_grace_s)
        self.unclaimed_by_device: dict[str, int] = {}
        self._reported: dict[tuple[int, int | None], float] = {}  # (pid, start ticks) -> first seen

    def enforce(self, now: float) -> None:
        self._enforce_quotas(now)
        if self.ctx.options.watch_unclaimed:
            self._watch_unclaimed(now)

    def _enforce_quotas(self, now: float) -> None:
        ctx = self.ctx
        owners = {pid: c for pid, c in self.telemetry.owner_of_pid.items() if c in self.telemetry.own_claims}
        if not owners:
            self.watchdog.enforce([], now)
            return
        claims = {
            c.id: c
            for c in ctx.pool.store.list_claims(states=[ClaimState.BOUND], limit=100_000)
            if c.id in set(owners.values())
        }
        limits = {(c.id, b.device_uuid): b.memory_bytes for c in claims.values() for b in c.bindings}
        owners = {pid: claim_id for pid, claim_id in owners.items() if claim_id in claims}
        for action in self.watchdog.enforce(find_overuse(self.telemetry.latest, owners, limits), now):
            over = action.overuse
            details = {
                "pid": over.pid,
                "pids": list(over.pids),
                "device": over.device_uuid,
                "used_memory_bytes": over.used_memory_bytes,
                "limit_bytes": over.limit_bytes,
                "mode": self.watchdog.mode.value,
            }
            ctx.event(f"watchdog.{action.action}", claims[over.claim_id], details)

    def _watch_unclaimed(self, now: float) -> None:
        counts: dict[str, int] = {}
        seen: set[tuple[int, int | None]] = set()
        protected = procfs.ancestors(os.getpid())
        for device, pid, used in self.telemetry.unclaimed():
            counts[device] = counts.get(device, 0) + 1
            key = (pid, procfs.start_ticks(pid))
            seen.add(key)
            first = self._reported.setdefault(key, now)
            if first == now:
                details = {
                    "pid": pid,
                    "device": device,
                    "used_memory_bytes": used,
                    "command": procfs.command_name(pid),
                    "killed": self.ctx.options.kill_unclaimed,
                }
                self.ctx.event("agent.unclaimed_process", None, details)
            if self.ctx.options.kill_unclaimed and pid > 1 and pid not in protected:
                late = now - first >= self.ctx.options.watchdog_grace_s
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL if late else signal.SIGTERM)
        self.unclaimed_by_device = counts
        self._reported = {key: at for key, at in self._reported.items() if key in seen}
