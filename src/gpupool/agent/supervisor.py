"""Processes of workloads: start detached ones with their log file, watch, and stop them.

A detached workload runs in its own session (so it outlives a `gpupool run` that returned, and a
stop reaches its whole process group), as its tenant's OS user when it has one (`run_as`); an
attached one belongs to its `gpupool run` and only its own, proven, pid is ever signalled.
Logs are 0600, owned by the user the workload runs as (the server reads them as root).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from gpupool.agent.run_as import spawn_as
from gpupool.agent.trust import RunAs
from gpupool.isolation import procfs
from gpupool.model.workload import Workload

LOG_DIR_MODE = 0o711  # users reach their own log by name, never list the others
LOG_MODE = 0o600


@dataclass(frozen=True)
class Stopping:
    deadline: float  # epoch seconds after which SIGKILL follows
    reason: str


class Supervisor:
    """Spawns, polls and stops workload processes; not thread-safe (the agent serialises it)."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping: dict[str, Stopping] = {}

    def log_path(self, claim_id: str) -> Path:
        return self.log_dir / f"{claim_id}.log"

    def spawn(
        self,
        claim_id: str,
        command: Sequence[str],
        cwd: str | None,
        env: Mapping[str, str],
        identity: RunAs | None = None,
    ) -> int:
        """Start a detached workload with stdout and stderr into its log; returns its pid. With
        `identity` it runs as that user (see `run_as`), else as the server's own user.

        Raises OSError when the command cannot be started (not found, not executable, bad cwd;
        a `run_as.LaunchError` says which).
        """
        log = self.open_log(claim_id, identity)
        try:
            if identity is not None:
                child = spawn_as(identity, command, cwd, env, stdout=log)
            else:
                child = subprocess.Popen(
                    list(command),
                    cwd=cwd or None,
                    env=dict(env),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        finally:
            os.close(log)
        self._children[claim_id] = child
        return child.pid

    def open_log(self, claim_id: str, identity: RunAs | None) -> int:
        """The workload's log for appending (never through a symlink), 0600 and owned by the
        user it runs as, so only that user and the server can read it."""
        self.log_dir.mkdir(mode=LOG_DIR_MODE, parents=True, exist_ok=True)
        os.chmod(self.log_dir, LOG_DIR_MODE)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.log_path(claim_id), flags, LOG_MODE)
        try:
            if identity is not None:
                os.fchown(fd, identity.uid, identity.gid)
            os.fchmod(fd, LOG_MODE)
        except OSError:
            os.close(fd)
            raise
        return fd

    def exit_code(self, workload: Workload) -> tuple[bool, int | None]:
        """(ended, exit code): the code is known for children of this agent, else None."""
        child = self._children.get(workload.claim_id)
        if child is not None:
            code = child.poll()
            if code is None:
                return False, None
            del self._children[workload.claim_id]
            return True, code
        if workload.pid is None:
            return False, None
        return not procfs.is_alive(workload.pid, workload.pid_start_ticks), None

    def begin_stop(self, workload: Workload, now: float, grace_s: float, reason: str) -> bool:
        """Send SIGTERM and remember to SIGKILL after `grace_s`; False if already stopping."""
        if workload.claim_id in self._stopping or workload.pid is None:
            return False
        self._stopping[workload.claim_id] = Stopping(now + grace_s, reason)
        self._signal(workload, signal.SIGTERM)
        return True

    def stopping(self, claim_id: str) -> Stopping | None:
        return self._stopping.get(claim_id)

    def escalate(self, workload: Workload, now: float) -> bool:
        """SIGKILL a workload whose grace period ran out; True if a SIGKILL was sent."""
        stop = self._stopping.get(workload.claim_id)
        if stop is None or now < stop.deadline:
            return False
        self._signal(workload, signal.SIGKILL)
        self._stopping[workload.claim_id] = Stopping(float("inf"), stop.reason)
        return True

    def forget(self, claim_id: str) -> None:
        self._stopping.pop(claim_id, None)

    def kill_all(self, workloads: Sequence[Workload]) -> None:
        """SIGKILL every detached workload still running (server shutdown after the grace)."""
        for workload in workloads:
            if workload.detached:
                self._signal(workload, signal.SIGKILL)
        for child in self._children.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)

    @staticmethod
    def _signal(workload: Workload, signum: int) -> None:
        if workload.pid is None or not procfs.is_alive(workload.pid, workload.pid_start_ticks):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if workload.detached:
                os.killpg(workload.pid, signum)  # its own session: the whole tree
            else:
                os.kill(workload.pid, signum)
