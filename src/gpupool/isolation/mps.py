"""CUDA MPS: one control daemon per shared device, each with its own pipe and log directory.

gpupool starts `nvidia-cuda-mps-control -d` for a device the first time a fractional vGPU on it
launches a workload, and quits it once no fractional claim is left there. It never changes the
card's compute mode or any other device setting. Clients reach their device's daemon through
CUDA_MPS_PIPE_DIRECTORY; their limits (CUDA_MPS_ACTIVE_THREAD_PERCENTAGE,
CUDA_MPS_PINNED_DEVICE_MEM_LIMIT) come from `launch_env`.

A client fault (e.g. an illegal address) puts the device's MPS server in FAULT state, which
poisons every client of that server; `check` reports it and `recover` restarts the daemon.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import threading
from pathlib import Path

log = logging.getLogger("gpupool.isolation.mps")

DEFAULT_CONTROL_BINARY = "nvidia-cuda-mps-control"
COMMAND_TIMEOUT_S = 15.0
"""How long one control command may take, in seconds."""


class MpsError(Exception):
    """The MPS control binary failed or is missing (translated by the agent into an event)."""


class MpsManager:
    """Starts, checks, recovers and stops one MPS control daemon per device UUID; thread-safe."""

    def __init__(self, state_dir: Path, control_binary: str = DEFAULT_CONTROL_BINARY) -> None:
        self.root = state_dir / "mps"
        self.control_binary = control_binary
        self._running: set[str] = set()
        self._lock = threading.Lock()

    # --------------------------------------------------------------- queries
    def directories(self, device_uuid: str) -> tuple[Path, Path]:
        """(pipe dir, log dir) of a device's daemon; short names keep socket paths under 108 bytes."""
        short = hashlib.sha1(device_uuid.encode()).hexdigest()[:12]
        base = self.root / short
        return base / "pipe", base / "log"

    def client_env(self, device_uuid: str) -> dict[str, str]:
        """What a client of this device's daemon must have in its environment."""
        pipe, logs = self.directories(device_uuid)
        return {"CUDA_MPS_PIPE_DIRECTORY": str(pipe), "CUDA_MPS_LOG_DIRECTORY": str(logs)}

    def running(self) -> list[str]:
        with self._lock:
            return sorted(self._running)

    # --------------------------------------------------------------- actions
    def ensure(self, device_uuid: str) -> dict[str, str]:
        """Start the device's daemon unless gpupool already did; return the client environment."""
        with self._lock:
            if device_uuid not in self._running:
                self._start(device_uuid)
                self._running.add(device_uuid)
        return self.client_env(device_uuid)

    def stop(self, device_uuid: str) -> None:
        """Quit the device's daemon (its server exits once its clients are gone)."""
        with self._lock:
            if device_uuid not in self._running:
                return
            self._running.discard(device_uuid)
            self._control(device_uuid, "quit")

    def stop_all(self) -> None:
        for device_uuid in self.running():
            try:
                self.stop(device_uuid)
            except MpsError as exc:
                log.warning("could not quit MPS for %s: %s", device_uuid, exc)

    def check(self, device_uuid: str) -> str | None:
        """None when the device's daemon answers and no server is in FAULT, else what is wrong."""
        try:
            servers = self._control(device_uuid, "get_server_list").split()
        except MpsError as exc:
            return f"control daemon does not answer ({exc})"
        for server_pid in servers:
            if not server_pid.isdigit():
                continue
            status = self._control(device_uuid, f"get_server_status {server_pid}")
            if "FAULT" in status.upper():
                return f"MPS server {server_pid} is in FAULT state (a client fault poisons all its clients)"
        return None

    def recover(self, device_uuid: str) -> None:
        """Restart a broken daemon: quit it (best effort), then start a fresh one."""
        with self._lock:
            try:
                self._control(device_uuid, "quit")
            except MpsError as exc:
                log.info("quit of broken MPS daemon for %s failed: %s", device_uuid, exc)
            self._start(device_uuid)
            self._running.add(device_uuid)

    # -------------------------------------------------------------- plumbing
    def _env(self, device_uuid: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.client_env(device_uuid))
        # The daemon (and the server it spawns) sees only its own device.
        env["CUDA_VISIBLE_DEVICES"] = device_uuid
        return env

    def _start(self, device_uuid: str) -> None:
        pipe, logs = self.directories(device_uuid)
        pipe.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        self._run([self.control_binary, "-d"], device_uuid, stdin="")
        log.info("started MPS control daemon for %s (pipe %s)", device_uuid, pipe)

    def _control(self, device_uuid: str, command: str) -> str:
        return self._run([self.control_binary], device_uuid, stdin=command + "\n")

    def _run(self, argv: list[str], device_uuid: str, stdin: str) -> str:
        try:
            done = subprocess.run(
                argv,
                input=stdin,
                env=self._env(device_uuid),
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MpsError(f"{' '.join(argv)}: {exc}") from exc
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise MpsError(f"{' '.join(argv)} exited {done.returncode}: {detail[-1] if detail else ''}")
        return done.stdout
