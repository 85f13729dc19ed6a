"""Start and stop a real `gpupool serve` process on a loopback port, by the PID we started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ADMIN_TOKEN = "test-admin-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ServerProcess:
    home: Path
    simulate: str = "2x4xH100-80GB"
    db: str | None = None
    port: int = field(default_factory=free_port)
    extra_args: tuple[str, ...] = ()
    python: str = sys.executable  # another checkout's interpreter serves that checkout (benchmarks)
    wrapper: tuple[str, ...] = ()  # a command the server runs under, e.g. `unshare --pid ...`
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    default_store: bool = False  # no --db: the store `serve` picks in GPUPOOL_HOME

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(GPUPOOL_HOME=str(self.home), GPUPOOL_ADMIN_TOKEN=ADMIN_TOKEN, GPUPOOL_URL=self.url)
        env.pop("GPUPOOL_TOKEN", None)
        env.update(self.extra_env)
        return env

    def start(self, timeout_s: float = 30.0) -> ServerProcess:
        db = self.db or str(self.home / "pool.db")
        args = [
            self.python,
            "-m",
            "gpupool",
            "serve",
            "--simulate",
            self.simulate,
            "--port",
            str(self.port),
        ]
        args += [*(() if self.default_store else ("--db", db)), "--log-level", "warning", *self.extra_args]
        if not self.simulate:  # simulate="" serves this host's real GPUs (NVML)
            args = [arg for arg in args if arg not in ("--simulate", "")]
        log = open(self.home / f"server-{self.port}.log", "ab")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            [*self.wrapper, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not come up in {timeout_s}s: {self.log_text()}")

    def log_text(self) -> str:
        path = self.home / f"server-{self.port}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def rss_bytes(self) -> int:
        """The server process's resident memory now (Linux /proc)."""
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS line")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def client(self, token: str = ADMIN_TOKEN) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
