"""The claim's launch environment and the MPS daemons behind fractional vGPUs.

`launch_env` gives a workload of a bound claim its isolation variables and framework hints, and
starts the device's MPS daemon for a fractional single-device claim; `check` quits daemons nobody
needs and recovers a broken one.
"""

from __future__ import annotations

import shutil

from gpupool.agent.context import AgentContext
from gpupool.agent.options import MpsMode
from gpupool.agent.usage import USAGE_ENV, USAGE_FILE, prepare_usage_dir
from gpupool.isolation import MpsError, MpsManager, framework_hints, launch_env
from gpupool.model import Claim, ClaimState


class MpsKeeper:
    def __init__(self, ctx: AgentContext) -> None:
        self.ctx = ctx
        wanted = self._wanted()
        self.mps = MpsManager(ctx.state_dir, ctx.options.mps_control) if wanted else None

    def _wanted(self) -> bool:
        mode = self.ctx.options.mps
        if mode == MpsMode.AUTO:
            return self.ctx.simulated is None and shutil.which(self.ctx.options.mps_control) is not None
        return mode == MpsMode.ON

    def launch_env(
        self, claim: Claim, owner: tuple[int, int] | None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """(environment to set, framework hints to default) for a workload of a bound claim;
        `owner` (uid, gid) is who its processes run as, when the agent knows."""
        ctx = self.ctx
        env = launch_env(claim)
        totals = {d.uuid: d.memory_total_bytes for d in ctx.pool.devices}
        hints = framework_hints(claim, totals)
        shared = [b for b in claim.bindings if not b.whole_device and not b.missing]
        if self.mps is not None and shared:
            if len(claim.bindings) == 1:
                device = shared[0].device_uuid
                fresh = device not in self.mps.running()
                try:
                    env.update(self.mps.ensure(device))
                except MpsError as exc:
                    ctx.event("mps.unavailable", claim, {"device": device, "error": str(exc)})
                else:
                    if fresh:
                        ctx.event("mps.started", claim, {"device": device})
            else:
                # One CUDA client reaches one MPS daemon; a claim over several devices runs without.
                ctx.event("mps.skipped", claim, {"reason": "fractional claim over several devices"})
        if ctx.simulated is not None:
            env[USAGE_ENV] = str(prepare_usage_dir(ctx.state_dir, claim.id, owner) / USAGE_FILE)
        return env, hints

    def check(self, now: float) -> None:
        if self.mps is None:
            return
        store = self.ctx.pool.store
        bound = store.list_claims(states=[ClaimState.BOUND], limit=100_000)
        needed = {b.device_uuid for c in bound for b in c.bindings if not b.whole_device}
        for device in self.mps.running():
            if device not in needed:
                self.mps.stop(device)
                self.ctx.event("mps.stopped", None, {"device": device, "reason": "no shared claim"})
                continue
            problem = self.mps.check(device)
            if problem is None:
                continue
            affected = sorted(c.id for c in bound if any(b.device_uuid == device for b in c.bindings))
            self.ctx.event("mps.fault", None, {"device": device, "problem": problem, "claims": affected})
            try:
                self.mps.recover(device)
            except MpsError as exc:
                self.ctx.event("mps.recover_failed", None, {"device": device, "error": str(exc)})
            else:
                self.ctx.event("mps.recovered", None, {"device": device, "claims": affected})

    def stop_all(self) -> None:
        if self.mps is not None:
            self.mps.stop_all()
