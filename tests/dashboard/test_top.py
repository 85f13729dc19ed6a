"""`gpupool top --once` against a real server: one frame with devices, queue, tenants, events."""

from __future__ import annotations

import subprocess
import sys
from collections import deque

from gpupool.cli.top import SPARK_POINTS, spark, tenant_style
from serverctl import ADMIN_TOKEN, ServerProcess


def test_top_once_prints_one_frame_of_the_pool(server: ServerProcess) -> None:
    with server.client() as http:
        # A whole node held, a slice on the other, so a second whole node is not free now.
        node = http.post("/v1/claims", json={"gpus": 4}).json()
        bound = http.post("/v1/claims", json={"memory": "10GiB", "compute": 25}).json()
        waiting = http.post("/v1/claims", json={"gpus": 4}).json()
        assert waiting["state"] == "pending"
    env = dict(server.env, GPUPOOL_TOKEN=ADMIN_TOKEN, COLUMNS="200", NO_COLOR="1")
    result = subprocess.run(
        [sys.executable, "-m", "gpupool", "top", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "8 devices" in out and "2 nodes" in out
    assert sum(1 for line in out.splitlines() if line.startswith("sim-node-")) == 8
    assert bound["id"] in out, "a bound claim is listed on its device"
    assert waiting["id"] in out and waiting["reason"] in out, (
        "the pending claim is in the queue with its reason"
    )
    assert "claim.created" in out
    with server.client() as http:
        for claim in (waiting, bound, node):
            http.delete(f"/v1/claims/{claim['id']}")


def test_top_without_a_server_fails_with_one_line(tmp_path: object) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gpupool", "top", "--once", "--url", "http://127.0.0.1:9", "--token", "x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "cannot reach gpupool" in result.stderr


def test_spark_scales_percent_to_blocks() -> None:
    line = spark(deque([0.0, 50.0, 100.0]))
    assert len(line.plain) == SPARK_POINTS
    assert line.plain.endswith("▁▅█")
    assert tenant_style("team-a") == tenant_style("team-a")
    assert tenant_style("admin") == "bright_blue"
