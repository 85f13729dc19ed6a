"""The agent's trust checks on their own: identity mapping, the clean environment, pid proof,
claim processes by secret, the privilege drop (root only) and the simulated usage files."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpupool.agent import trust
from gpupool.agent.run_as import LaunchError, spawn_as
from gpupool.agent.usage import read_usage
from gpupool.errors import Forbidden
from gpupool.model import Tenant
from osusers import os_user


def test_admin_runs_as_the_server_and_an_unmapped_tenant_is_refused_with_the_fix() -> None:
    assert trust.identity_for(Tenant("admin")) is None
    with pytest.raises(Forbidden, match="gpupool tenants set team-a --run-as USER"):
        trust.identity_for(Tenant("team-a"))


@pytest.mark.parametrize("user", ["root", "no-such-user-q"], ids=["root", "unknown"])
def test_never_root_nor_an_unknown_user(user: str) -> None:
    with pytest.raises(Forbidden):
        trust.resolve_user(user)


def test_workload_env_is_built_from_nothing() -> None:
    caller = {
        "PATH": "/opt/bin:/usr/bin",
        "MINE": "kept",
        "PYTHONPATH": "/home/me/lib",
        "GPUPOOL_TOKEN": "gpt_secret",
        "GPUPOOL_ADMIN_TOKEN": "gpa_secret",
        "LD_PRELOAD": "/tmp/x.so",
        "LD_AUDIT": "/tmp/y.so",
        "CUDA_VISIBLE_DEVICES": "GPU-someone-else",
        "CUDA_MPS_PIPE_DIRECTORY": "/var/state/mps/other",
        "HOME": "/root",
        "TF_FORCE_GPU_ALLOW_GROWTH": "false",
    }
    launch = {"CUDA_VISIBLE_DEVICES": "GPU-mine", "GPUPOOL_CLAIM_ID": "c-1"}
    hints = {"TF_FORCE_GPU_ALLOW_GROWTH": "true", "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
    identity = trust.RunAs("alice", 1001, 1001, (1001,), "/home/alice", "/bin/bash")
    env = trust.workload_env(caller, launch, hints, identity)
    assert env == {
        "PATH": "/opt/bin:/usr/bin",
        "MINE": "kept",
        "PYTHONPATH": "/home/me/lib",
        "TF_FORCE_GPU_ALLOW_GROWTH": "false",  # a hint never overrides the caller
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "CUDA_VISIBLE_DEVICES": "GPU-mine",
        "GPUPOOL_CLAIM_ID": "c-1",
        "HOME": "/home/alice",
        "USER": "alice",
        "LOGNAME": "alice",
        "SHELL": "/bin/bash",
    }
    assert trust.workload_env({}, {}, {}, None) == {"PATH": trust.DEFAULT_PATH}, "never the server's own"


def _sleeper(env_extra: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "30"], env={"PATH": os.environ["PATH"], **env_extra})


def test_prove_pid() -> None:
    secret, proof = trust.new_secret()
    registered = time.time()
    carrier = _sleeper({trust.SECRET_ENV: secret})
    stranger = _sleeper({})
    liar = _sleeper({trust.SECRET_ENV: "guessed"})
    try:
        time.sleep(0.1)
        assert trust.prove_pid(carrier.pid, proof, registered) is None
        assert "does not carry" in str(trust.prove_pid(stranger.pid, proof, registered))
        assert "does not carry" in str(trust.prove_pid(liar.pid, proof, registered))
        assert "server" in str(trust.prove_pid(os.getpid(), proof, registered))
        assert "server" in str(trust.prove_pid(1, proof, registered))
        assert "started before" in str(trust.prove_pid(carrier.pid, proof, registered + 60))
        assert "no secret" in str(trust.prove_pid(carrier.pid, None, registered))
    finally:
        for proc in (carrier, stranger, liar):
            proc.kill()
            proc.wait()
    assert "does not run" in str(trust.prove_pid(carrier.pid, proof, registered))


def test_claim_processes_by_tree_and_by_secret(tmp_path: Path) -> None:
    secret, proof = trust.new_secret()
    pidfile = tmp_path / "pid"
    # A grandchild that left the tree (double fork, new session) but keeps the secret.
    code = (
        "import os, sys, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(30)\n"
        "    os._exit(0)\n"
        "os.wait(); time.sleep(30)\n"
    )
    root = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, trust.SECRET_ENV: secret})
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        escaped = int(pidfile.read_text())
        by_tree = trust.ClaimProcesses(roots={root.pid: "c-1"}, proofs={})
        assert by_tree.owner(root.pid) == "c-1" and by_tree.owner(escaped) is None
        both = trust.ClaimProcesses(roots={root.pid: "c-1"}, proofs={proof: "c-1"})
        assert both.owners([root.pid, escaped, os.getpid()]) == {root.pid: "c-1", escaped: "c-1"}
    finally:
        root.kill()
        root.wait()
        if pidfile.exists() and pidfile.read_text():
            os.kill(int(pidfile.read_text()), 9)


def test_spawn_as_drops_groups_gid_uid_and_verifies(tmp_path: Path) -> None:
    with os_user() as user:
        identity = trust.resolve_user(user.pw_name)
        log = tmp_path / "out"
        probe = (
            "id -u; id -g; id -G; grep -E '^(NoNewPrivs|CapEff)' /proc/self/status; pwd; echo ${SECRET-unset}"
        )
        with open(log, "wb") as out:
            child = spawn_as(identity, ["/bin/sh", "-c", probe], "/", {"PATH": "/usr/bin:/bin"}, out.fileno())
        assert child.wait(timeout=10) == 0
        lines = log.read_text().split("\n")
        assert lines[0:3] == [str(user.pw_uid), str(user.pw_gid), str(user.pw_gid)]
        assert "NoNewPrivs:\t1" in lines and "CapEff:\t0000000000000000" in lines
        assert lines[5:7] == ["/", "unset"]

        locked = tmp_path / "locked"
        locked.mkdir(mode=0o700)
        with open(log, "wb") as out, pytest.raises(LaunchError) as refused:
            spawn_as(identity, ["/bin/true"], str(locked), {}, out.fileno())
        assert refused.value.stage == "cwd"
        with open(log, "wb") as out, pytest.raises(LaunchError) as missing:
            spawn_as(identity, ["no-such-program-x"], "/", {"PATH": "/usr/bin:/bin"}, out.fileno())
        assert (missing.value.stage, missing.value.errno) == ("exec", 2)


def test_usage_files_are_never_followed_or_blocked_on(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"memory_bytes": 5}')
    (tmp_path / "link.json").symlink_to(secret)
    os.mkfifo(tmp_path / "fifo.json")
    assert read_usage(secret) is not None
    assert read_usage(tmp_path / "link.json") is None
    assert read_usage(tmp_path / "fifo.json") is None, "a FIFO must not block the agent"


def test_a_ray_nodes_launcher_runs_a_mapped_workload_as_the_user_too(tmp_path: Path) -> None:
    from gpupool.cluster.process_launcher import ProcessLauncher

    with os_user() as user:
        launcher = ProcessLauncher(tmp_path / "work", {"GPUPOOL_NODE": "n1"})
        probe = ["/bin/sh", "-c", "id -u; echo node=$GPUPOOL_NODE leak=${HOSTILE-unset}"]
        pid = launcher.start("c-1", probe, "/nonexistent", {"PATH": "/usr/bin:/bin"}, run_as=user.pw_name)
        assert pid > 0
        deadline = time.monotonic() + 10
        while not (out := launcher.poll("c-1", 0, 4096)).ended:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert out.data.decode().split() == [str(user.pw_uid), "node=n1", "leak=unset"]
        assert out.exit_code == 0
        assert (launcher.log_path("c-1").stat().st_uid, launcher.log_path("c-1").stat().st_mode & 0o777) == (
            user.pw_uid,
            0o600,
        )
