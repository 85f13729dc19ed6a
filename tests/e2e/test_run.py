"""`gpupool run` against a real server: exit codes, release on every exit path, leases, detach."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runctl import (
    FAST_AGENT_ARGS,
    claim,
    claims,
    events,
    gpupool,
    kill_quietly,
    only_claim_of,
    pid_alive,
    start_gpupool,
    wait_for,
    workload_cmd,
)
from serverctl import ServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        home=tmp_path_factory.mktemp("run"), simulate="1x2xH100-80GB", extra_args=FAST_AGENT_ARGS
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def _ids(server: ServerProcess) -> set[str]:
    return {c["id"] for c in claims(server, ("pending", "bound", "released", "failed"))}


def _running_workload(server: ServerProcess) -> dict[str, object]:
    def find() -> dict[str, object] | None:
        with server.client() as http:
            items = http.get("/v1/workloads").json()["items"]
        return next((w for w in items if w["state"] == "running" and w["pid"]), None)

    found: dict[str, object] = wait_for(find)
    return found


@pytest.mark.parametrize("code", [0, 3], ids=["success", "failure"])
def test_exit_code_propagates_and_claim_is_released(server: ServerProcess, code: int) -> None:
    before = _ids(server)
    cmd = workload_cmd("--exit", str(code), "--env", "CUDA_VISIBLE_DEVICES", "--env", "GPUPOOL_CLAIM_ID")
    done = gpupool(server, "run", "--memory", "1GiB", "--compute", "10", "--", *cmd)
    assert done.returncode == code, done.stderr
    item = only_claim_of(server, before)
    assert item["state"] == "released"
    assert f"GPUPOOL_CLAIM_ID={item['id']}" in done.stdout
    assert f"CUDA_VISIBLE_DEVICES={item['bindings'][0]['device_uuid']}" in done.stdout
    actions = [e["action"] for e in events(server, item["id"])]
    assert actions[:3] == ["claim.created", "claim.bound", "workload.started"]
    assert "workload.exited" in actions and "claim.released" in actions


def test_crash_by_signal_exits_128_plus_n_and_releases(server: ServerProcess) -> None:
    before = _ids(server)
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"
    done = gpupool(server, "run", "--", sys.executable, "-c", crash)
    assert done.returncode == 128 + signal.SIGKILL
    assert only_claim_of(server, before)["state"] == "released"


def test_missing_command_exits_127_and_releases(server: ServerProcess) -> None:
    before = _ids(server)
    done = gpupool(server, "run", "--memory", "1GiB", "--", "/no/such/command")
    assert done.returncode == 127
    assert "cannot start" in done.stderr and done.stderr.count("\n") <= 2
    assert only_claim_of(server, before)["state"] == "released"


def test_sigint_is_forwarded_and_claim_released(server: ServerProcess, tmp_path: Path) -> None:
    before = _ids(server)
    pidfile = tmp_path / "pid"
    proc = start_gpupool(
        server, "run", "--memory", "1GiB", "--", *workload_cmd("--sleep", "30", "--pidfile", str(pidfile))
    )
    try:
        _running_workload(server)
        wait_for(pidfile.exists)  # CMD has its signal handlers in place
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C sends to `gpupool run`
        out, _err = proc.communicate(timeout=15)
    finally:
        kill_quietly(proc)
    assert "workload interrupted" in out, "CMD got the SIGINT"
    assert proc.returncode == 130
    assert only_claim_of(server, before)["state"] == "released"


def test_kill_9_of_run_stops_cmd_and_releases_claim(server: ServerProcess, tmp_path: Path) -> None:
    before = _ids(server)
    pidfile = tmp_path / "pid"
    proc = start_gpupool(
        server, "run", "--memory", "1GiB", "--", *workload_cmd("--sleep", "60", "--pidfile", str(pidfile))
    )
    try:
        _running_workload(server)
        child = int(wait_for(lambda: pidfile.exists() and pidfile.read_text()))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        item = only_claim_of(server, before)
        wait_for(lambda: claim(server, item["id"])["state"] == "released", timeout=8)
        wait_for(lambda: not pid_alive(child), timeout=5)
    finally:
        kill_quietly(proc)


def test_kill_9_while_queued_is_reclaimed_by_lease_expiry(server: ServerProcess) -> None:
    with server.client() as http:
        holder = http.post("/v1/claims", json={"gpus": 2}).json()
    before = _ids(server)
    proc = start_gpupool(server, "run", "--", *workload_cmd())
    try:
        waiting = wait_for(lambda: [c for c in claims(server, ("pending",)) if c["id"] not in before])[0]
        with server.client() as http:
            http.put(f"/v1/claims/{waiting['id']}/lease")  # whatever it did, the lease is live
        os.kill(proc.pid, signal.SIGKILL)
        _out, err = proc.communicate(timeout=10)
        assert f"claim {waiting['id']} pending #1" in err, "queue position and reason are shown"
        gone = wait_for(lambda: (c := claim(server, waiting["id"]))["state"] == "released" and c, timeout=8)
        assert gone["reason"].startswith("lease expired")
        assert "agent.lease_expired" in [e["action"] for e in events(server, waiting["id"])]
    finally:
        kill_quietly(proc)
        with server.client() as http:
            http.delete(f"/v1/claims/{holder['id']}")


def test_no_wait_fails_at_once_when_full(server: ServerProcess) -> None:
    with server.client() as http:
        holder = http.post("/v1/claims", json={"gpus": 2}).json()
    try:
        before = _ids(server)
        done = gpupool(server, "run", "--no-wait", "--", *workload_cmd())
        assert done.returncode == 2
        assert done.stderr.startswith("gpupool: error: ") and "cannot bind now" in done.stderr
        assert only_claim_of(server, before)["state"] == "released"
    finally:
        with server.client() as http:
            http.delete(f"/v1/claims/{holder['id']}")


def test_server_side_release_stops_the_attached_command(server: ServerProcess) -> None:
    before = _ids(server)
    proc = start_gpupool(server, "run", "--memory", "1GiB", "--", *workload_cmd("--sleep", "30"))
    try:
        _running_workload(server)
        item = only_claim_of(server, before)
        with server.client() as http:
            http.delete(f"/v1/claims/{item['id']}")
        _out, err = proc.communicate(timeout=15)
    finally:
        kill_quietly(proc)
    assert proc.returncode == 143
    assert "released by the server" in err


def test_detach_logs_and_stop(server: ServerProcess) -> None:
    done = gpupool(server, "run", "--detach", "--memory", "1GiB", "--", *workload_cmd("--sleep", "60"))
    assert done.returncode == 0, done.stderr
    claim_id = done.stdout.strip()
    assert claim(server, claim_id)["state"] == "bound"
    wait_for(lambda: "started" in gpupool(server, "logs", claim_id).stdout, timeout=10)
    stopped = gpupool(server, "stop", claim_id)
    assert stopped.returncode == 0, stopped.stderr
    assert f"{claim_id} stopped" in stopped.stdout
    wait_for(lambda: claim(server, claim_id)["state"] == "released", timeout=5)
    with server.client() as http:
        workload = http.get(f"/v1/workloads/{claim_id}").json()
    assert workload["state"] == "stopped" and workload["exit_code"] == 143
    assert not pid_alive(workload["pid"])


def test_detached_workload_exit_releases_its_claim(server: ServerProcess) -> None:
    done = gpupool(server, "run", "--detach", "--", *workload_cmd("--exit", "5"))
    claim_id = done.stdout.strip()
    wait_for(lambda: claim(server, claim_id)["state"] == "released", timeout=10)
    assert claim(server, claim_id)["reason"] == "workload exited with code 5"
    logs = gpupool(server, "logs", claim_id, "--follow")
    assert logs.returncode == 0 and "workload done" in logs.stdout


def test_logs_of_unknown_claim_is_a_one_line_error(server: ServerProcess) -> None:
    done = gpupool(server, "logs", "c-nosuchclaim")
    assert done.returncode == 2
    assert done.stderr.startswith("gpupool: error: ") and done.stderr.count("\n") == 1
