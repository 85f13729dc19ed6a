"""Start and follow workload processes on this node (the `Launcher` contract, local half).

Each process runs in its own session with stdout and stderr into one file per claim; it gets
SIGTERM if the process that launched it (the Ray agent actor's worker) dies, so a lost agent
leaves no orphan workloads behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gpupool.agent.launcher import LaunchOutput
from gpupool.agent.run_as import spawn_as
from gpupool.agent.trust import resolve_user
from gpupool.isolation.procfs import die_with_parent

HOST_SPECIFIC_ENV = frozenset(
    {
        "PATH", "HOME", "PWD", "OLDPWD", "SHELL", "USER", "LOGNAME", "HOSTNAME", "TMPDIR", "TERM",
        "VIRTUAL_ENV", "PYTHONHOME", "LD_LIBRARY_PATH", "DISPLAY", "SSH_AUTH_SOCK", "SSH_CONNECTION",
        "SSH_CLIENT", "SSH_TTY", "XDG_RUNTIME_DIR", "XDG_SESSION_ID", "MAIL", "SHLVL", "_",
    }
)  # fmt: skip
"""Variables of the caller's host that must not override the node's own (paths, login, session)."""


def node_env(given: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The node's environment, overlaid by the caller's (minus host-specific keys), then `extra`."""
    portable = {key: value for key, value in given.items() if key not in HOST_SPECIFIC_ENV}
    return {**os.environ, **portable, **extra}


def _exit_status(returncode: int) -> int:
    """Shell-style: 128+N for a process killed by signal N."""
    return 128 - returncode if returncode < 0 else returncode


class ProcessLauncher:
    """Processes of this node's workloads by claim id; thread-safe."""

    def __init__(self, work_dir: Path, extra_env: Mapping[str, str] | None = None) -> None:
        self.work_dir = work_dir
        self.extra_env = dict(extra_env or {})
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        # PR_SET_PDEATHSIG fires when the *thread* that forked exits: fork from one lasting thread.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpupool-spawn")

    def log_path(self, claim_id: str) -> Path:
        return self.work_dir / f"{claim_id}.log"

    def start(
        self,
        claim_id: str,
        command: Sequence[str],
        cwd: str | None,
        env: Mapping[str, str],
        run_as: str | None = None,
    ) -> int:
        """Start the claim's process (a missing `cwd` falls back to the work dir); return its pid.

        With `run_as` it runs as that user of this node, from the environment it was given (the
        control plane built it clean) plus the node's variables, never this process's own."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        where = cwd if cwd and os.path.isdir(cwd) else str(self.work_dir)
        with open(self.log_path(claim_id), "wb") as log:
            if run_as is not None:
                identity = resolve_user(run_as)
                os.fchown(log.fileno(), identity.uid, identity.gid)
                os.fchmod(log.fileno(), 0o600)
                launch_env = {**env, **self.extra_env}
                usable = cwd if cwd and os.path.isdir(cwd) else None  # else the user's home, or /
                child = self._spawner.submit(
                    spawn_as, identity, command, usable, launch_env, log.fileno(), True
                ).result()
            else:
                child = self._spawner.submit(
                    subprocess.Popen,
                    list(command),
                    cwd=where,
                    env=node_env(env, self.extra_env),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=die_with_parent(os.getpid()),
                ).result()
        with self._lock:
            self._children[claim_id] = child
        return child.pid

    def poll(self, claim_id: str, offset: int, max_bytes: int) -> LaunchOutput:
        with self._lock:
            child = self._children.get(claim_id)
        if child is None:
            return LaunchOutput(b"", offset, None, True)
        returncode = child.poll()  # before reading, so no byte written before the exit is missed
        path = self.log_path(claim_id)
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(max_bytes)
        next_offset = offset + len(data)
        ended = returncode is not None and next_offset >= path.stat().st_size
        code = None if returncode is None else _exit_status(returncode)
        if ended:
            with self._lock:
                self._children.pop(claim_id, None)
        return LaunchOutput(data, next_offset, code, ended)

    def signal(self, claim_id: str, signum: int) -> bool:
        with self._lock:
            child = self._children.get(claim_id)
        if child is None or child.poll() is not None:
            return False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signum)
        return True

    def stop_all(self) -> int:
        """SIGKILL every running workload (stale after the node was declared lost); how many."""
        with self._lock:
            children = list(self._children.items())
            self._children.clear()
        killed = 0
        for _claim_id, child in children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.pid, signal.SIGKILL)
                killed += 1
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
        return killed
