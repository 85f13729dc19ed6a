"""Isolation through `gpupool run` on a 1-GPU simulated pool: MPS (a recording stub stands in for
nvidia-cuda-mps-control), its fault recovery, and the memory watchdog."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runctl import (
    FAST_AGENT_ARGS,
    GiB,
    claim,
    events,
    gpupool,
    kill_quietly,
    start_gpupool,
    wait_for,
    workload_cmd,
)
from serverctl import ServerProcess

STUB = Path(__file__).resolve().parents[1] / "isolation" / "mps_stub.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("iso")
    control = home / "mps-control"
    control.write_text(f'#!/bin/sh\nexec {sys.executable} {STUB} "$@"\n')
    control.chmod(0o755)
    args = (*FAST_AGENT_ARGS, "--mps", "on", "--mps-control", str(control), "--watchdog", "kill")
    proc = ServerProcess(home=home, simulate="1x1xH100-80GB", extra_args=args).start()
    try:
        yield proc
    finally:
        proc.stop()


def _stub_calls(server: ServerProcess) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    for log in sorted((server.home / "data" / "state" / "mps").glob("*/stub.jsonl")):
        calls += [json.loads(line) for line in log.read_text().splitlines()]
    return calls


def _env_lines(stdout: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def test_fractional_run_gets_its_own_mps_daemon_and_limits(server: ServerProcess) -> None:
    keys = (
        "CUDA_VISIBLE_DEVICES",
        "CUDA_MPS_PIPE_DIRECTORY",
        "CUDA_MPS_LOG_DIRECTORY",
        "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE",
        "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT",
        "XLA_PYTHON_CLIENT_MEM_FRACTION",
        "TF_FORCE_GPU_ALLOW_GROWTH",
    )
    cmd = workload_cmd(*[arg for key in keys for arg in ("--env", key)])
    done = gpupool(server, "run", "--memory", "10GiB", "--compute", "25", "--", *cmd)
    assert done.returncode == 0, done.stderr
    env = _env_lines(done.stdout)
    state_dir = server.home / "data" / "state"
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=10240M"
    assert Path(env["CUDA_MPS_PIPE_DIRECTORY"]).is_relative_to(state_dir / "mps")
    assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert 0 < float(env["XLA_PYTHON_CLIENT_MEM_FRACTION"]) < 0.13

    starts = [c for c in _stub_calls(server) if c["argv"] == ["-d"]]
    assert len(starts) == 1, "one daemon per shared device"
    assert starts[0]["env"] == {
        "CUDA_VISIBLE_DEVICES": env["CUDA_VISIBLE_DEVICES"],
        "CUDA_MPS_PIPE_DIRECTORY": env["CUDA_MPS_PIPE_DIRECTORY"],
        "CUDA_MPS_LOG_DIRECTORY": env["CUDA_MPS_LOG_DIRECTORY"],
    }
    # The claim is gone, so the daemon is quit; no command ever touches the compute mode.
    wait_for(lambda: any(c["stdin"] == "quit" for c in _stub_calls(server)), timeout=6)
    assert not any("compute" in " ".join(c["argv"]) + c["stdin"] for c in _stub_calls(server))


def test_claim_env_starts_the_daemon_and_exports_what_a_process_started_by_hand_needs(
    server: ServerProcess,
) -> None:
    printed = gpupool(server, "claim", "--memory", "10GiB", "--compute", "25", "--env")
    assert printed.returncode == 0, printed.stderr
    claim_id = printed.stdout.splitlines()[0].removeprefix("# claim ").strip()
    try:
        # The lines are valid shell: evaluate them with a hint already set by the user.
        shell = subprocess.run(
            ["sh", "-c", f"{printed.stdout}\nenv"],
            env={"PATH": "/usr/bin:/bin", "TF_FORCE_GPU_ALLOW_GROWTH": "false"},
            capture_output=True,
            text=True,
            check=True,
        )
        env = _env_lines(shell.stdout)
        assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
        assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=10240M"
        assert env["TF_FORCE_GPU_ALLOW_GROWTH"] == "false", "a hint never overrides the user's value"
        assert 0 < float(env["XLA_PYTHON_CLIENT_MEM_FRACTION"]) < 0.13
        daemons = [c for c in _stub_calls(server) if c["argv"] == ["-d"]]
        assert daemons and daemons[-1]["env"]["CUDA_MPS_PIPE_DIRECTORY"] == env["CUDA_MPS_PIPE_DIRECTORY"]
    finally:
        gpupool(server, "release", claim_id)


def test_claim_env_of_a_pending_claim_says_so_and_exports_nothing(server: ServerProcess) -> None:
    holder = gpupool(server, "claim", "--gpus", "1", "--json")  # the one GPU, so the next one waits
    assert holder.returncode == 0, holder.stderr
    printed = gpupool(server, "claim", "--gpus", "1", "--env")
    claim_id = printed.stdout.split()[2]
    try:
        assert printed.returncode == 0, printed.stderr
        assert printed.stdout.startswith(f"# claim {claim_id} is pending: ")
        assert "export" not in printed.stdout
    finally:
        gpupool(server, "release", claim_id, json.loads(holder.stdout)["id"])


def test_broken_mps_server_is_recovered_with_an_event(server: ServerProcess) -> None:
    started = gpupool(
        server,
        "run",
        "--detach",
        "--memory",
        "10GiB",
        "--compute",
        "25",
        "--",
        *workload_cmd("--sleep", "60"),
    )
    claim_id = started.stdout.strip()
    try:
        pipe = Path(
            next(c for c in reversed(_stub_calls(server)) if c["argv"] == ["-d"])["env"][
                "CUDA_MPS_PIPE_DIRECTORY"
            ]
        )
        (pipe / "fault").write_text("a client hit an illegal address\n")
        recovered = wait_for(
            lambda: [e for e in events(server) if e["action"] == "mps.recovered"], timeout=20
        )
        assert claim_id in recovered[-1]["details"]["claims"]
        actions = [e["action"] for e in events(server)]
        assert actions.index("mps.fault") < actions.index("mps.recovered")
        # The restart: `quit` to the broken daemon, then a fresh `-d` (the next health check may
        # already have queried the new daemon by the time we look).
        calls = _stub_calls(server)
        quits = [i for i, c in enumerate(calls) if c["argv"] == [] and c["stdin"] == "quit"]
        assert quits and calls[quits[-1] + 1]["argv"] == ["-d"], [(c["argv"], c["stdin"]) for c in calls]
        assert claim(server, claim_id)["state"] == "bound", "recovery does not take the claim away"
    finally:
        gpupool(server, "stop", claim_id)


@pytest.fixture(scope="module")
def watchdog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The watchdog alone: fast telemetry and grace, but a lease and no MPS daemon that a loaded
    machine could make late (a late heartbeat or daemon start ended `run` with 2, not 137)."""
    args = ("--lease-ttl", "60", "--telemetry-interval", "0.2", "--watchdog-grace", "1", "--watchdog", "kill")
    home = tmp_path_factory.mktemp("watchdog")
    proc = ServerProcess(home=home, simulate="1x1xH100-80GB", extra_args=(*args, "--mps", "off")).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_watchdog_stops_only_the_process_over_its_quota(watchdog_server: ServerProcess) -> None:
    server = watchdog_server
    # Two 10 GiB vGPUs on the one GPU; the greedy one grows to 20 GiB and ignores SIGTERM.
    greedy = start_gpupool(
        server,
        "run", "--memory", "10GiB", "--compute", "25", "--",
        *workload_cmd("--memory", str(4 * GiB), "--grow-to", str(20 * GiB), "--sleep", "60", "--ignore-term"),
    )  # fmt: skip
    neighbour = start_gpupool(
        server,
        "run", "--memory", "10GiB", "--compute", "25", "--",
        *workload_cmd("--memory", str(9 * GiB), "--util", "60", "--sleep", "4", "--exit", "0"),
    )  # fmt: skip
    try:
        greedy_out, greedy_err = greedy.communicate(timeout=30)
        out, err = neighbour.communicate(timeout=30)
    finally:
        kill_quietly(greedy)
        kill_quietly(neighbour)
    told = (
        f"\n--- greedy (exit {greedy.returncode}) ---\n{greedy_out}{greedy_err}"
        f"\n--- neighbour (exit {neighbour.returncode}) ---\n{out}{err}\n--- server ---\n{server.log_text()}"
    )
    assert greedy.returncode == 137, "SIGTERM ignored, so SIGKILL after the grace period" + told
    assert neighbour.returncode == 0, told
    assert "workload done" in out, told
    watchdog = [e for e in events(server) if e["action"].startswith("watchdog.")]
    assert [e["action"] for e in watchdog] == ["watchdog.terminate", "watchdog.kill"], told
    assert len({e["claim_id"] for e in watchdog}) == 1
    assert watchdog[0]["details"]["used_memory_bytes"] == 20 * GiB
    assert watchdog[0]["details"]["limit_bytes"] == 10 * GiB
