"""`gpupool run` from another process against a cluster-mode server: CMD runs on its claim's node
(through that node's agent actor), its output streams back, its exit code is ours."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from clusterctl import ControlPlane

from serverctl import ADMIN_TOKEN

SHOW = (
    "import os, sys; print(os.environ['GPUPOOL_NODE'], os.environ['CUDA_VISIBLE_DEVICES'], "
    "os.environ['GPUPOOL_MEMORY_LIMIT_BYTES']); print('to stderr', file=sys.stderr); sys.exit(3)"
)


def cli_env(plane: ControlPlane) -> dict[str, str]:
    return {**os.environ, "GPUPOOL_URL": plane.url, "GPUPOOL_TOKEN": ADMIN_TOKEN}


def test_gpupool_run_streams_output_and_exit_code_from_the_bound_node(control_plane: ControlPlane) -> None:
    command = ["run", "--model", "A100*", "--memory", "4GiB", "--", sys.executable, "-c", SHOW]
    done = subprocess.run(
        [sys.executable, "-m", "gpupool", *command],
        env=cli_env(control_plane),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr
    node, uuids, memory = done.stdout.splitlines()[0].split()
    assert node == "gpu-b"
    assert uuids in control_plane.devices_on("gpu-b")
    assert memory == str(4 << 30)
    assert "to stderr" in done.stdout, "stderr is merged into the streamed output"
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    claims = httpx.get(f"{control_plane.url}/v1/claims", headers=headers).json()["items"]
    assert {c["state"] for c in claims if c["model"] == "A100*"} == {"released"}


def test_gpupool_run_of_a_missing_command_exits_127(control_plane: ControlPlane) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gpupool", "run", "--", "/nonexistent/cmd"],
        env=cli_env(control_plane),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 127, done.stderr
    assert "cannot start" in done.stderr
