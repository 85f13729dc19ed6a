"""`gpupool serve --ray ADDRESS`: the real command joins the Ray cluster and serves its nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from raycluster import LocalRayCluster

from serverctl import ServerProcess


@pytest.fixture
def served(ray_cluster: LocalRayCluster, tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(home=tmp_path, simulate="", extra_args=("--ray", ray_cluster.address))
    server.start(timeout_s=90)
    try:
        yield server
    finally:
        server.stop()


def test_serve_ray_joins_the_cluster_and_lists_its_nodes(
    served: ServerProcess, ray_cluster: LocalRayCluster
) -> None:
    with served.client() as http:
        nodes = http.get("/v1/nodes").json()
        devices = http.get("/v1/devices").json()["items"]
        claim = http.post("/v1/claims", json={"gpus": 4, "model": "A100*"}).json()
    assert nodes["mode"] == "ray"
    live = {n["name"]: n["ray_node_id"] for n in nodes["items"] if n["state"] == "alive"}
    assert live == {name: node.node_id for name, node in ray_cluster.nodes.items()}
    assert len(devices) == 10
    assert {b["node"] for b in claim["bindings"]} == {"gpu-b"}


def test_serve_refuses_simulate_with_ray(tmp_path: Path) -> None:
    server = ServerProcess(home=tmp_path, simulate="1x1xH100-80GB", extra_args=("--ray", "127.0.0.1:1"))
    with pytest.raises(RuntimeError, match=r"gpupool\.io/simulate"):
        server.start(timeout_s=30)
