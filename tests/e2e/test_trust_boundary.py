"""The trust boundary of the node agent, probed as an untrusted tenant would, against real
`gpupool serve` processes on loopback (issue 9, findings 1-5).

1. a detached workload runs as the tenant's own OS user, from a clean environment: it cannot read
   the admin token (environment or file) nor run as the server's uid; an unmapped tenant gets 403;
2. a pid a tenant reports is proven before it is trusted: a foreign pid survives PATCH, stop and
   release;
3. a second replica on the same store leaves the first replica's workload and devices alone;
4. 1 MIG parent + 7 instances are 7 schedulable devices, never a whole GPU, never idle;
5. two processes of one claim, together over its memory, are stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gpupool.config import write_private
from osusers import os_user
from runctl import FAST_AGENT_ARGS, GiB, events, gpupool, kill_quietly, pid_alive, wait_for, workload_cmd
from serverctl import ADMIN_TOKEN, ServerProcess

TESTS = Path(__file__).resolve().parents[1]


def _open_home() -> Path:
    """A server home every user may walk through, so that what stops a workload from reading the
    server's files is their own mode, not a locked parent directory."""
    home = Path(tempfile.mkdtemp(prefix="gpupool-trust-"))
    home.chmod(0o755)
    return home


def _tenant(server: ServerProcess, name: str) -> str:
    with server.client() as admin:
        answer = admin.post("/v1/tenants", json={"name": name})
        assert answer.status_code == 201, answer.text
        token: str = answer.json()["token"]
    return token


def _workload_ended(http: httpx.Client, claim_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        workload: dict[str, Any] = http.get(f"/v1/workloads/{claim_id}").json()
        return workload if workload["state"] not in ("starting", "running") else None

    found: dict[str, Any] = wait_for(ended, timeout=15)
    return found


# ----------------------------------------------------------------------- finding 1
@pytest.fixture
def open_server() -> Iterator[ServerProcess]:
    home = _open_home()
    server = ServerProcess(home=home, simulate="1x2xH100-80GB", extra_args=FAST_AGENT_ARGS).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


PROBE = (
    "echo uid=$(id -u) gid=$(id -g); echo home=$HOME cwd=$(pwd); "
    "echo admin_env=${GPUPOOL_ADMIN_TOKEN-unset} token_env=${GPUPOOL_TOKEN-unset}; "
    "echo preload=${LD_PRELOAD-unset} mine=${MINE-unset} visible=$CUDA_VISIBLE_DEVICES; "
    'cat "$1" && echo READ-THE-ADMIN-TOKEN; echo probe-done'
)


def test_a_tenant_without_an_os_user_runs_nothing_detached(server: ServerProcess) -> None:
    token = _tenant(server, "unmapped")
    with server.client(token) as http:
        claim = http.post("/v1/claims", json={"gpus": 1}).json()
        probe = ["/bin/sh", "-c", "id -u; echo admin=${GPUPOOL_ADMIN_TOKEN-unset}"]
        answer = http.post("/v1/workloads", json={"claim_id": claim["id"], "command": probe, "detach": True})
        assert answer.status_code == 403, f"it ran as the server: {answer.text}"
        assert "gpupool tenants set unmapped --run-as USER" in answer.json()["detail"]
        assert http.get(f"/v1/workloads/{claim['id']}").status_code == 404, "nothing was recorded"
        assert http.get(f"/v1/claims/{claim['id']}").json()["state"] == "bound", "the claim is kept"
        http.delete(f"/v1/claims/{claim['id']}")


def test_detached_workload_runs_as_the_tenants_user_and_cannot_read_the_admin_token(
    open_server: ServerProcess, tmp_path: Path
) -> None:
    server = open_server
    token_file = server.home / "data" / "admin-token"
    write_private(token_file, ADMIN_TOKEN + "\n")  # where `serve` keeps it when not given by env
    mapped = _tenant(server, "team-a")
    _tenant(server, "team-b")
    with os_user() as user:
        # The admin maps team-a to its OS user with the CLI; the mapping is checked.
        done = gpupool(server, "tenants", "set", "team-a", "--run-as", user.pw_name)
        assert done.returncode == 0, done.stderr
        assert f"run as {user.pw_name}" in done.stdout
        with server.client() as admin:
            assert admin.patch("/v1/tenants/team-b", json={"run_as": "root"}).status_code == 409
            refused = admin.patch("/v1/tenants/team-b", json={"run_as": "no-such-user-x"})
            assert refused.status_code == 409 and "does not exist" in refused.json()["detail"]

        with server.client(mapped) as http:
            claim = http.post("/v1/claims", json={"gpus": 1}).json()
            assert claim["state"] == "bound"
            body = {
                "claim_id": claim["id"],
                "command": ["/bin/sh", "-c", PROBE, "probe", str(token_file)],
                "detach": True,
                "env": {"MINE": "kept", "LD_PRELOAD": "/tmp/evil.so", "GPUPOOL_TOKEN": mapped},
            }
            started = http.post("/v1/workloads", json=body)
            assert started.status_code == 201, started.text
            assert started.json()["run_as"] == user.pw_name
            workload = _workload_ended(http, claim["id"])
            log = http.get(f"/v1/workloads/{claim['id']}/logs").json()["data"]

        assert "probe-done" in log, log
        assert f"uid={user.pw_uid} gid={user.pw_gid}" in log, "it runs as the tenant's user"
        assert f"uid={os.geteuid()} " not in log
        assert ADMIN_TOKEN not in log, "neither the server's environment nor its token file leaks"
        assert "READ-THE-ADMIN-TOKEN" not in log and "Permission denied" in log
        assert "admin_env=unset token_env=unset" in log
        assert "preload=unset mine=kept" in log, "the caller's variables minus the deny list"
        assert f"visible={claim['bindings'][0]['device_uuid']}" in log
        assert "cwd=/" in log, "no home directory: it starts in /"
        assert workload["exit_code"] == 0
        log_file = Path(workload["log_path"])
        info = log_file.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (user.pw_uid, 0o600), "only the user and root"

        # A working directory the user cannot enter is refused with a reason (and nothing runs).
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o700)
        with server.client(mapped) as http:
            claim = http.post("/v1/claims", json={"gpus": 1}).json()
            body = {"claim_id": claim["id"], "command": ["/bin/true"], "detach": True, "cwd": str(locked)}
            answer = http.post("/v1/workloads", json=body)
            assert answer.status_code == 422, answer.text
            assert answer.json()["detail"].startswith(f"cwd: '{locked}' is not usable by user")


def test_workload_body_bounds(server: ServerProcess) -> None:
    with server.client() as http:
        claim = http.post("/v1/claims", json={"gpus": 1}).json()
        cases = [
            {"command": ["x"] * 5000},
            {"command": ["a" * (200 * 1024)]},
            {"command": ["sh", "-c", "echo \0"]},
            {"command": ["true"], "env": {f"K{i}": "v" for i in range(2000)}},
            {"command": ["true"], "env": {"A=B": "v"}},
            {"command": ["true"], "env": {f"K{i}": "v" * 100_000 for i in range(12)}},
            {"command": ["true"], "cwd": "relative/dir"},
        ]
        for extra in cases:
            answer = http.post("/v1/workloads", json={"claim_id": claim["id"], "detach": True, **extra})
            # A body over the server's 1 MiB limit is refused (413) before anything reads it.
            expected = 413 if len(json.dumps(extra)) > 1024 * 1024 else 422
            assert answer.status_code == expected, (list(extra), answer.text[:200])
        assert http.get(f"/v1/workloads/{claim['id']}").status_code == 404
        http.delete(f"/v1/claims/{claim['id']}")


# ----------------------------------------------------------------------- finding 2
def test_a_foreign_pid_survives_patch_stop_and_release(server: ServerProcess) -> None:
    token = _tenant(server, "prober")
    victim = subprocess.Popen(["sleep", "60"])
    assert server.proc is not None
    targets = (victim.pid, server.proc.pid, 1)
    try:
        with server.client(token) as http:
            claim = http.post("/v1/claims", json={"gpus": 1}).json()
            attached = http.post("/v1/workloads", json={"claim_id": claim["id"], "command": ["sleep"]})
            assert attached.status_code == 201
            answers = [http.patch(f"/v1/workloads/{claim['id']}", json={"pid": pid}) for pid in targets]
            http.delete(f"/v1/workloads/{claim['id']}")
            http.delete(f"/v1/claims/{claim['id']}")
            time.sleep(2.0)  # several reaper and watchdog ticks
            assert victim.poll() is None, "the foreign process was signalled"
            assert httpx.get(f"{server.url}/healthz").status_code == 200, "the server lives"
            for pid, answer in zip(targets, answers, strict=True):
                assert answer.status_code == 403, answer.text
                assert answer.json()["detail"].startswith(f"pid {pid} is not proven")
            assert http.get(f"/v1/workloads/{claim['id']}").json()["pid"] is None
            assert "GPUPOOL_WORKLOAD_SECRET" in attached.json()["env"], "the proof travels to the child"
        refused = [e for e in events(server, claim["id"]) if e["action"] == "workload.pid_refused"]
        assert [e["details"]["pid"] for e in refused] == list(targets)
        assert refused[0]["details"]["by"] == "prober"
    finally:
        kill_quietly(victim)  # type: ignore[arg-type]


def test_a_proven_pid_is_trusted_and_stopped(server: ServerProcess) -> None:
    token = _tenant(server, "prover")
    with server.client(token) as http:
        claim = http.post("/v1/claims", json={"gpus": 1}).json()
        attached = http.post("/v1/workloads", json={"claim_id": claim["id"], "command": ["sleep"]}).json()
        child = subprocess.Popen(["sleep", "60"], env={**os.environ, **attached["env"]})
        try:
            answer = http.patch(f"/v1/workloads/{claim['id']}", json={"pid": child.pid})
            assert answer.status_code == 200 and answer.json()["state"] == "running"
            http.delete(f"/v1/workloads/{claim['id']}")
            assert child.wait(timeout=10) == -signal.SIGTERM, "the proven process got the stop"
        finally:
            kill_quietly(child)  # type: ignore[arg-type]
        http.delete(f"/v1/claims/{claim['id']}")


# ----------------------------------------------------------------------- finding 3
def _other_host_wrapper() -> tuple[str, ...]:
    """Run the second replica in its own pid namespace where possible: like another host, it
    cannot see the first replica's processes in its /proc."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        return ()
    probe = subprocess.run(
        [unshare, "--pid", "--fork", "--mount-proc", "true"], capture_output=True, check=False
    )
    return (
        (unshare, "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM") if probe.returncode == 0 else ()
    )


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def test_a_second_replica_leaves_the_first_replicas_workload_running(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.db")
    first = ServerProcess(home=tmp_path / "a", simulate="2x2xH100-80GB", db=db, extra_args=FAST_AGENT_ARGS)
    second = ServerProcess(
        home=tmp_path / "b",
        simulate="1x2xH100-80GB",  # it sees sim-node-0 only, as another host would
        db=db,
        extra_args=FAST_AGENT_ARGS,
        wrapper=_other_host_wrapper(),
    )
    for server in (first, second):
        server.home.mkdir()
    first.start()
    try:
        with first.client() as http:
            claims = [http.post("/v1/claims", json={"gpus": 2}).json() for _ in range(2)]
            assert all(c["state"] == "bound" for c in claims)
            far = next(c for c in claims if c["bindings"][0]["node"] == "sim-node-1")
            body = {"claim_id": far["id"], "command": workload_cmd("--sleep", "120"), "detach": True}
            pid = http.post("/v1/workloads", json=body).json()["pid"]
        second.start()
        time.sleep(2.5)  # the second replica's reaper, telemetry and idle events run several times
        inner = _children(second.proc.pid) if second.wrapper and second.proc else []
        second.stop()
        for server_pid in inner:  # the server inside the namespace stops after its wrapper
            wait_for(lambda server_pid=server_pid: not pid_alive(server_pid), timeout=15)
        time.sleep(0.5)
        with first.client() as http:
            workload = http.get(f"/v1/workloads/{far['id']}").json()
            claim = http.get(f"/v1/claims/{far['id']}").json()
        assert pid_alive(pid), "the second replica stopped the first one's workload"
        assert workload["state"] == "running", workload
        assert workload["agent"], "the workload records the agent that runs it"
        assert claim["state"] == "bound", claim
        assert not any(b["missing"] for b in claim["bindings"]), "another host's devices are not gone"
        actions = [e["action"] for e in events(first, far["id"])]
        assert "binding.missing" not in actions and "workload.lost" not in actions, actions
    finally:
        second.stop()
        first.stop()


def test_a_missing_binding_clears_when_its_device_comes_back(tmp_path: Path) -> None:
    db = str(tmp_path / "pool.db")
    home = tmp_path / "home"
    home.mkdir()
    full = ServerProcess(home=home, simulate="2x2xH100-80GB", db=db).start()
    with full.client() as http:
        claims = [http.post("/v1/claims", json={"gpus": 2}).json() for _ in range(2)]
        far = next(c for c in claims if c["bindings"][0]["node"] == "sim-node-1")
    full.stop()
    shrunk = ServerProcess(home=home, simulate="1x2xH100-80GB,1x1xH100-80GB", db=db).start()
    try:
        with shrunk.client() as http:
            missing = [b["missing"] for b in http.get(f"/v1/claims/{far['id']}").json()["bindings"]]
        assert sorted(missing) == [False, True], "sim-node-1 lost its second GPU"
    finally:
        shrunk.stop()
    back = ServerProcess(home=home, simulate="2x2xH100-80GB", db=db).start()
    try:
        with back.client() as http:
            restored = http.get(f"/v1/claims/{far['id']}").json()
        assert restored["state"] == "bound"
        assert not any(b["missing"] for b in restored["bindings"]), "the device came back"
        assert "binding.restored" in [e["action"] for e in events(back, far["id"])]
    finally:
        back.stop()


# ----------------------------------------------------------------------- finding 4
FAKE_NVML_SHIM = """
import sys
sys.path.insert(0, {devices!r})
from fake_pynvml import H100_MEMORY, H100_NAME, FakeGpu, FakeMig, FakeNvml, MiB

name = f"{{H100_NAME}} MIG 1g.10gb"
slots = {{slot: FakeMig(f"MIG-0000-{{slot}}", name, 9856 * MiB, 16) for slot in range(7)}}
gpu = FakeGpu("GPU-00000000-0000-0000-0000-0000000000aa", H100_NAME, bus=0x18, memory_total=H100_MEMORY,
              sm_count=132, mig_mode=1, mig_slots=slots)
sys.modules[__name__] = FakeNvml([gpu]).module
"""


@pytest.fixture(params=["simulated", "nvml"])
def mig_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """1 H100 in MIG mode with 7 1g.10gb instances: simulated, or NVML through the fake pynvml."""
    args = ("--idle-timeout", "1", "--telemetry-interval", "0.2")
    if request.param == "simulated":
        server = ServerProcess(home=tmp_path, simulate="1x1xH100-80GB:7x1g.10gb", extra_args=args)
    else:
        shim = tmp_path / "shim"
        shim.mkdir()
        (shim / "pynvml.py").write_text(FAKE_NVML_SHIM.format(devices=str(TESTS / "devices")))
        path = os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        server = ServerProcess(home=tmp_path, simulate="", extra_args=args, extra_env={"PYTHONPATH": path})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_one_mig_parent_and_seven_instances_are_seven_schedulable_devices(mig_server: ServerProcess) -> None:
    with mig_server.client() as http:
        whole = http.post("/v1/claims", json={"gpus": 1}).json()
        assert whole["state"] == "pending" and "--mig" in whole["reason"], "the parent is never whole"
        pattern = http.post("/v1/claims", json={"gpus": 1, "model": "H100*"}).json()
        assert pattern["state"] == "pending", "a whole-GPU pattern never matches an instance"
        fraction = http.post("/v1/claims", json={"memory": "1GiB"}).json()
        assert fraction["state"] == "pending"
        for pending in (whole, pattern, fraction):
            http.delete(f"/v1/claims/{pending['id']}")

        devices = http.get("/v1/devices").json()["items"]
        assert len(devices) == 8
        parent = next(d for d in devices if d["parent_uuid"] is None)
        assert parent["mig_mode"] and not parent["schedulable"]
        instances = [d for d in devices if d["parent_uuid"] == parent["uuid"]]
        assert len(instances) == 7 and all(d["schedulable"] for d in instances)
        assert all(d["utilization_percent"] is None for d in instances), "MIG: utilization is N/A"

        mig = [http.post("/v1/claims", json={"mig": "1g.10gb", "model": "H100*"}).json() for _ in range(8)]
        assert [c["state"] for c in mig] == ["bound"] * 7 + ["pending"]
        used = {c["bindings"][0]["device_uuid"] for c in mig[:7]}
        assert used == {d["uuid"] for d in instances}, "each on its own instance, never the parent"
        assert all(c["bindings"][0]["whole_device"] and c["mig"] == "1g.10gb" for c in mig[:7])
        assert http.post("/v1/claims", json={"mig": "3g.40gb"}).json()["state"] == "pending"
        assert http.post("/v1/claims", json={"mig": "half"}).status_code == 422

        time.sleep(2.5)  # idle timeout 1 s: N/A utilization never counts as idle
        states = [http.get(f"/v1/claims/{c['id']}").json()["state"] for c in mig[:7]]
        assert states == ["bound"] * 7
        assert "agent.idle_reclaim" not in [e["action"] for e in events(mig_server)]


# ----------------------------------------------------------------------- finding 5
@pytest.fixture(scope="module")
def watchdog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    args = (*FAST_AGENT_ARGS, "--watchdog", "kill", "--mps", "off")
    server = ServerProcess(home=tmp_path_factory.mktemp("dog"), simulate="1x1xH100-80GB", extra_args=args)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_two_processes_of_one_claim_over_its_quota_together_are_stopped(
    watchdog_server: ServerProcess,
) -> None:
    half = workload_cmd("--memory", str(6 * GiB), "--sleep", "60")
    script = f"{' '.join(half)} & {' '.join(half)} & wait"
    with watchdog_server.client() as http:
        claim = http.post("/v1/claims", json={"memory": "10GiB", "compute": 25}).json()
        body = {"claim_id": claim["id"], "command": ["/bin/sh", "-c", script], "detach": True}
        assert http.post("/v1/workloads", json=body).status_code == 201
        workload = _workload_ended(http, claim["id"])
        # The process list is the agent's last telemetry sample: it empties at the next sample.
        wait_for(lambda: http.get(f"/v1/workloads/{claim['id']}").json()["processes"] == [], timeout=10)
    assert workload["state"] == "exited", workload
    dog = [e for e in events(watchdog_server, claim["id"]) if e["action"].startswith("watchdog.")]
    assert dog and dog[0]["action"] == "watchdog.terminate", dog
    details = dog[0]["details"]
    assert details["used_memory_bytes"] == 12 * GiB and details["limit_bytes"] == 10 * GiB
    assert len(details["pids"]) == 2 and not any(pid_alive(pid) for pid in details["pids"])


def test_one_process_under_quota_is_left_alone(watchdog_server: ServerProcess) -> None:
    cmd = workload_cmd("--memory", str(6 * GiB), "--sleep", "1.5", "--exit", "0")
    with watchdog_server.client() as http:
        claim = http.post("/v1/claims", json={"memory": "10GiB", "compute": 25}).json()
        body = {"claim_id": claim["id"], "command": cmd, "detach": True}
        assert http.post("/v1/workloads", json=body).status_code == 201
        workload = _workload_ended(http, claim["id"])
    assert (workload["state"], workload["exit_code"]) == ("exited", 0)
    assert not [e for e in events(watchdog_server, claim["id"]) if e["action"].startswith("watchdog.")]
