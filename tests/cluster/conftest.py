"""One real Ray cluster (head + 2 workers with simulated GPUs) and one control plane for every
test under tests/cluster: starting Ray costs seconds, so it is shared and tests clean up after
themselves (every claim they made is released by `clean_pool`)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

sys.path.insert(0, str(Path(__file__).parent))

from clusterctl import ControlPlane, wait_for
from raycluster import LocalRayCluster

from gpupool.agent import AgentOptions, MpsMode, NodeAgent
from gpupool.api.app import create_app
from gpupool.api.routes.workloads import install_agent
from gpupool.cluster import ClusterMode, ClusterOptions
from gpupool.model import ClaimState, Tenant
from gpupool.pool import PoolService
from gpupool.scheduler import make_placer
from gpupool.store import Store
from serverctl import ADMIN_TOKEN, free_port

WORKERS = {"gpu-a": "4xH100-80GB", "gpu-b": "4xA100-40GB"}


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[LocalRayCluster]:
    cluster = LocalRayCluster().start()
    try:
        for name, spec in WORKERS.items():
            cluster.add(name, spec)
        cluster.connect()
        yield cluster
    finally:
        cluster.shutdown()


@pytest.fixture(scope="package")
def control_plane(
    ray_cluster: LocalRayCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ControlPlane]:
    """Pool + agent + membership watcher on the Ray cluster, with the REST API on a loopback port."""
    home = tmp_path_factory.mktemp("cluster")
    # The ping deadline is the product default (1 s): shorter ones declared live nodes dead when the
    # 2-core machine was busy with other work.
    cluster = ClusterMode.join(ray_cluster.address, ClusterOptions(interval_s=0.2, ping_timeout_s=1.0))
    # As `serve --ray` builds it: nodes join later, so a claim too big for now waits.
    pool = PoolService(
        Store(home / "pool.db"), cluster.backend, make_placer("default"), fixed_inventory=False
    )
    pool.start()
    options = AgentOptions(state_dir=home / "state", mps=MpsMode.OFF, reaper_interval_s=0.2, tick_s=0.05)
    agent = NodeAgent(pool, options)
    cluster.attach(pool, agent)
    agent.start()
    app = create_app(pool, ADMIN_TOKEN, schedule_interval_s=0.2)
    install_agent(app, agent)
    app.state.node_directory = cluster
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, 20)
    try:
        yield ControlPlane(ray_cluster, cluster, pool, agent, f"http://127.0.0.1:{port}", home)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        agent.shutdown()
        cluster.close()


@pytest.fixture(autouse=True)
def clean_pool(request: pytest.FixtureRequest) -> Iterator[None]:
    """Release every claim a test left active, so the next test starts from an empty pool."""
    yield
    if "control_plane" not in request.fixturenames:
        return
    plane: ControlPlane = request.getfixturevalue("control_plane")
    for claim in plane.pool.store.list_claims(states=[ClaimState.BOUND, ClaimState.PENDING]):
        plane.pool.release(Tenant("admin"), claim.id, reason="test cleanup")
