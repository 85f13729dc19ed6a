"""Helpers for `gpupool run` tests: the CLI as a real process against a real server."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from serverctl import ADMIN_TOKEN, ServerProcess

WORKLOAD = str(Path(__file__).parent / "agent" / "workload.py")
GiB = 1024**3

# Fast agent settings so that lease expiry, idle reclaim and the watchdog take seconds.
FAST_AGENT_ARGS = ("--lease-ttl", "1.5", "--telemetry-interval", "0.2", "--watchdog-grace", "1")


def cli_env(server: ServerProcess, token: str = ADMIN_TOKEN) -> dict[str, str]:
    env = dict(server.env)
    env["GPUPOOL_TOKEN"] = token
    return env


def gpupool(
    server: ServerProcess, *args: str, timeout: float = 30, token: str = ADMIN_TOKEN
) -> subprocess.CompletedProcess[str]:
    """Run `gpupool ARGS` to the end and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "gpupool", *args],
        env=cli_env(server, token),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_gpupool(server: ServerProcess, *args: str) -> subprocess.Popen[str]:
    """Start `gpupool ARGS` in the background (the caller waits for it or kills it by its pid)."""
    return subprocess.Popen(
        [sys.executable, "-m", "gpupool", *args],
        env=cli_env(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def workload_cmd(*args: str) -> list[str]:
    return [sys.executable, WORKLOAD, *args]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.1) -> Any:
    """Poll until `predicate()` is truthy; return its value or fail with the last one."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    assert value, f"condition not met in {timeout}s"
    return value


def claims(server: ServerProcess, states: tuple[str, ...] = ("pending", "bound")) -> list[dict[str, Any]]:
    with server.client() as http:
        items: list[dict[str, Any]] = http.get("/v1/claims", params={"state": list(states)}).json()["items"]
    return items


def claim(server: ServerProcess, claim_id: str) -> dict[str, Any]:
    with server.client() as http:
        data: dict[str, Any] = http.get(f"/v1/claims/{claim_id}").json()
    return data


def events(server: ServerProcess, claim_id: str | None = None) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"limit": 10_000}
    if claim_id:
        params["claim"] = claim_id
    with server.client() as http:
        items: list[dict[str, Any]] = http.get("/v1/events", params=params).json()["items"]
    return items


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def only_claim_of(server: ServerProcess, since_ids: set[str]) -> dict[str, Any]:
    """The one claim created since `since_ids` was taken (all states)."""
    new = [c for c in claims(server, ("pending", "bound", "released", "failed")) if c["id"] not in since_ids]
    assert len(new) == 1, new
    return new[0]


def kill_quietly(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
