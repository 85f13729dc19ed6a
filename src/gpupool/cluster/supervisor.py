"""`ClusterSupervisor`: the agent's supervisor when workloads run on other nodes.

It keeps the one-machine `Supervisor` contract, so the node agent (leases, reaper, stop, logs)
works unchanged: a workload is started by the agent actor of the node its claim is bound to,
its output is pulled into the usual log file on each reaper tick (so `gpupool logs` and
`gpupool run` follow it as before), and stops become signals sent through that actor. A workload
whose node is lost ends with the node's loss as its reason.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpupool.agent.launcher import LaunchOutput
from gpupool.agent.supervisor import Stopping, Supervisor
from gpupool.agent.trust import RunAs
from gpupool.cluster import handles
from gpupool.cluster.backend import RayBackend
from gpupool.model.workload import Workload

CALL_TIMEOUT_S = 10.0
"""Deadline of a start through an agent actor, in seconds (a fresh process fork is quick)."""
POLL_TIMEOUT_S = 1.0
"""Deadline of one output pull, in seconds; a late answer is retried on the next tick."""
POLL_BYTES = 1 << 20


@dataclass
class _Remote:
    node: str
    offset: int = 0


class ClusterSupervisor(Supervisor):
    """Routes each workload to its claim's node; `node_of(claim_id)` names that node."""

    def __init__(self, log_dir: Path, backend: RayBackend, node_of: Callable[[str], str]) -> None:
        super().__init__(log_dir)
        self.backend = backend
        self.node_of = node_of
        self._remote: dict[str, _Remote] = {}
        self._remote_stopping: dict[str, Stopping] = {}

    def spawn(
        self,
        claim_id: str,
        command: Sequence[str],
        cwd: str | None,
        env: Mapping[str, str],
        identity: RunAs | None = None,
    ) -> int:
        """Start it through its node's agent; with `identity` the node runs it as that user (looked
        up again there: the name must exist on the node)."""
        node = self.node_of(claim_id)
        actor = self.backend.actor_for(node)
        if actor is None:
            raise OSError(f"node {node} has no live agent")
        try:
            pid = int(
                handles.call(
                    actor,
                    "start",
                    claim_id,
                    list(command),
                    cwd,
                    dict(env),
                    identity.user if identity else None,
                    timeout_s=CALL_TIMEOUT_S,
                )
            )
        except handles.CallFailed as exc:
            raise OSError(f"node {node}: {exc}") from None
        except Exception as exc:  # the actor raised (e.g. command not found): OSError, like Popen
            cause = exc.cause if hasattr(exc, "cause") and isinstance(exc.cause, OSError) else None
            raise cause or OSError(f"node {node}: {exc}") from None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path(claim_id).write_bytes(b"")
        self._remote[claim_id] = _Remote(node)
        return pid

    def exit_code(self, workload: Workload) -> tuple[bool, int | None]:
        remote = self._remote.get(workload.claim_id)
        if remote is None:
            return super().exit_code(workload)
        record = self.backend.get(remote.node)
        if record is None or record.state == "lost" or record.actor is None:
            reason = f"node {remote.node} lost" + (f": {record.reason}" if record and record.reason else "")
            self._remote_stopping.setdefault(workload.claim_id, Stopping(float("inf"), reason))
            del self._remote[workload.claim_id]
            return True, None
        if record.ping_failures:
            return False, None  # the node missed a ping: do not block the agent on it now
        try:
            out: LaunchOutput = handles.call(
                record.actor, "poll", workload.claim_id, remote.offset, POLL_BYTES, timeout_s=POLL_TIMEOUT_S
            )
        except handles.CallFailed:
            return False, None  # the membership watcher decides whether the node is gone
        if out.data:
            with open(self.log_path(workload.claim_id), "ab") as log:
                log.write(out.data)
            remote.offset = out.next_offset
        if not out.ended:
            return False, None
        del self._remote[workload.claim_id]
        return True, out.exit_code

    def begin_stop(self, workload: Workload, now: float, grace_s: float, reason: str) -> bool:
        if workload.claim_id not in self._remote:
            return super().begin_stop(workload, now, grace_s, reason)
        if workload.claim_id in self._remote_stopping:
            return False
        self._remote_stopping[workload.claim_id] = Stopping(now + grace_s, reason)
        self._send(workload.claim_id, signal.SIGTERM)
        return True

    def stopping(self, claim_id: str) -> Stopping | None:
        return self._remote_stopping.get(claim_id) or super().stopping(claim_id)

    def escalate(self, workload: Workload, now: float) -> bool:
        stop = self._remote_stopping.get(workload.claim_id)
        if workload.claim_id not in self._remote or stop is None:
            return super().escalate(workload, now)
        if now < stop.deadline:
            return False
        self._send(workload.claim_id, signal.SIGKILL)
        self._remote_stopping[workload.claim_id] = Stopping(float("inf"), stop.reason)
        return True

    def forget(self, claim_id: str) -> None:
        self._remote_stopping.pop(claim_id, None)
        super().forget(claim_id)

    def kill_all(self, workloads: Sequence[Workload]) -> None:
        for workload in workloads:
            if workload.claim_id in self._remote:
                self._send(workload.claim_id, signal.SIGKILL)
        super().kill_all([w for w in workloads if w.claim_id not in self._remote])

    def _send(self, claim_id: str, signum: int) -> None:
        """Signal a remote workload's process group through its node's agent (fire and forget)."""
        remote = self._remote.get(claim_id)
        actor = self.backend.actor_for(remote.node) if remote is not None else None
        if actor is not None:
            actor.signal.remote(claim_id, int(signum))
