"""Telemetry: sample every device and say which claim each GPU process belongs to.

A process belongs to a claim only when it is proven (`trust.ClaimProcesses`): in the tree of a
workload this agent started or proved, or carrying a live workload's secret. On the simulated
backend the processes of this agent's workloads declare their usage (see `usage`), and only
proven pids are put on the devices.
"""

from __future__ import annotations

from gpupool.agent.context import AgentContext
from gpupool.agent.trust import ClaimProcesses
from gpupool.agent.usage import DeclaredUsage, read_claim_usage
from gpupool.isolation import procfs
from gpupool.model import DeviceTelemetry
from gpupool.model.workload import Workload


class Telemetry:
    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        self.latest: list[DeviceTelemetry] = []
        self.owner_of_pid: dict[int, str] = {}  # GPU processes of claims, at the last sample
        self.own_claims: set[str] = set()  # claims whose workload this agent runs or watches
        self.declared: dict[str, list[DeclaredUsage]] = {}  # proven declarations per claim
        self._simulated_set: set[tuple[str, int]] = set()

    def sample(self, now: float) -> None:
        ctx = self.ctx
        live = [w for w in ctx.records.list_workloads(live_only=True) if w.pid is not None]
        own = [w for w in live if ctx.owns(w)]
        processes = ClaimProcesses(
            roots={w.pid: w.claim_id for w in own if w.pid is not None},
            proofs={w.proof_hash: w.claim_id for w in live if w.proof_hash},
        )
        if ctx.simulated is not None:
            self._sync_simulated(own, processes)
        self.latest = ctx.pool.backend.telemetry()
        self.owner_of_pid = processes.owners(p.pid for s in self.latest for p in s.processes)
        self.own_claims = {w.claim_id for w in own}

    def processes(self, claim_id: str) -> list[tuple[int, str, int]]:
        """(pid, device uuid, used memory bytes) of a claim's processes at the last sample."""
        return [
            (p.pid, sample.uuid, p.used_memory_bytes)
            for sample in self.latest
            for p in sample.processes
            if self.owner_of_pid.get(p.pid) == claim_id
        ]

    def unclaimed(self) -> list[tuple[str, int, int]]:
        """(device uuid, pid, used memory bytes) of GPU processes that belong to no claim, MPS
        servers (gpupool's own, shared by claims) aside."""
        return [
            (sample.uuid, p.pid, p.used_memory_bytes)
            for sample in self.latest
            for p in sample.processes
            if p.pid not in self.owner_of_pid and not procfs.command_name(p.pid).startswith("nvidia-cuda-mps")
        ]

    def _sync_simulated(self, own: list[Workload], processes: ClaimProcesses) -> None:
        simulated = self.ctx.simulated
        assert simulated is not None
        wanted: dict[tuple[str, int], DeclaredUsage] = {}
        declared: dict[str, list[DeclaredUsage]] = {}
        for workload in own:
            assert workload.pid is not None
            for usage in read_claim_usage(self.ctx.state_dir, workload.claim_id):
                pid = usage.pid or workload.pid
                if processes.owner(pid) != workload.claim_id:
                    continue  # a pid the claim cannot prove is not put on its devices
                declared.setdefault(workload.claim_id, []).append(usage)
                claim = self.ctx.pool.store.get_claim(workload.claim_id)
                for binding in claim.bindings:
                    wanted[(binding.device_uuid, pid)] = usage
        for device, pid in self._simulated_set - set(wanted):
            simulated.clear_process(device, pid)
        for (device, pid), usage in wanted.items():
            simulated.set_process(device, pid, usage.memory_bytes, usage.utilization_percent)
        self._simulated_set = set(wanted)
        self.declared = declared

    def forget(self, claim_id: str) -> None:
        """A workload ended: its declared processes leave the simulated devices at once."""
        self.declared.pop(claim_id, None)
        simulated = self.ctx.simulated
        if simulated is None:
            return
        for device, pid in list(self._simulated_set):
            if self.owner_of_pid.get(pid) == claim_id or not procfs.is_alive(pid):
                simulated.clear_process(device, pid)
                self._simulated_set.discard((device, pid))
