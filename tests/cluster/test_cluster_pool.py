"""Cluster mode on a real Ray cluster: nodes found by label, claims placed across them by the real
scheduler, workloads started by the agent actor of the bound node with the claim's environment."""

from __future__ import annotations

import sys
import time

import httpx
from clusterctl import ControlPlane, wait_for

from gpupool.model import ClaimSpec, ClaimState, GiB, Tenant
from gpupool.model.workload import WorkloadState
from serverctl import ADMIN_TOKEN

ADMIN = Tenant("admin")


def test_every_ray_node_joins_with_its_labelled_gpus(control_plane: ControlPlane) -> None:
    by_node: dict[str, set[str]] = {}
    for device in control_plane.pool.devices:
        by_node.setdefault(device.node, set()).add(device.model)
    assert by_node == {"head": {"H100-80GB"}, "gpu-a": {"H100-80GB"}, "gpu-b": {"A100-40GB"}}
    assert len(control_plane.pool.devices) == 10
    assert len({d.uuid for d in control_plane.pool.devices}) == 10, "UUIDs are distinct across nodes"

    body = httpx.get(
        f"{control_plane.url}/v1/nodes", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ).json()
    assert body["mode"] == "ray"
    nodes = {item["name"]: item for item in body["items"]}
    assert set(nodes) == {"head", "gpu-a", "gpu-b"}
    ray_ids = {name: control_plane.ray.nodes[name].node_id for name in nodes}
    assert {name: item["ray_node_id"] for name, item in nodes.items()} == ray_ids
    assert all(item["state"] == "alive" and item["launch"] == "remote" for item in nodes.values())


def test_claims_are_placed_across_nodes_by_the_scheduler(control_plane: ControlPlane) -> None:
    pool = control_plane.pool
    four = [pool.create_claim(ADMIN, ClaimSpec(gpus=4, model="H100*")) for _ in range(2)]
    assert [c.state for c in four] == [ClaimState.BOUND, ClaimState.PENDING], "only gpu-a has 4 H100s"
    assert {b.node for b in four[0].bindings} == {"gpu-a"}
    a100 = pool.create_claim(
        ADMIN, ClaimSpec(gpus=2, model="A100*", memory_bytes=10 * GiB, compute_percent=25)
    )
    assert {b.node for b in a100.bindings} == {"gpu-b"}
    pool.release(ADMIN, four[0].id)
    assert pool.store.get_claim(four[1].id).state == ClaimState.BOUND


def _run_detached(plane: ControlPlane, claim_id: str, code: str) -> str:
    """Start `python -c code` for a claim through the agent; wait for it and return its output."""
    plane.agent.create_workload(ADMIN, claim_id, [sys.executable, "-c", code], True, None, {})
    wait_for(lambda: not plane.agent.workload(ADMIN, claim_id).state.is_live, 30)
    data, _, _ = plane.agent.read_log(ADMIN, claim_id, 0)
    return data.decode()


PRINT_ENV = (
    "import os; print(os.environ['GPUPOOL_NODE'], os.environ['GPUPOOL_RAY_NODE_ID'], "
    "os.environ['CUDA_VISIBLE_DEVICES'], os.environ.get('CUDA_MPS_ACTIVE_THREAD_PERCENTAGE'))"
)


def test_workloads_run_on_the_bound_node_with_the_claim_environment(control_plane: ControlPlane) -> None:
    pool = control_plane.pool
    on_b = pool.create_claim(
        ADMIN, ClaimSpec(gpus=1, model="A100*", memory_bytes=8 * GiB, compute_percent=30)
    )
    on_h100 = pool.create_claim(ADMIN, ClaimSpec(gpus=2, model="H100*"))
    assert {b.node for b in on_b.bindings} == {"gpu-b"}
    for claim in (on_b, on_h100):
        node = claim.bindings[0].node
        assert {b.node for b in claim.bindings} == {node}
        out = _run_detached(control_plane, claim.id, PRINT_ENV).split()
        uuids = ",".join(b.device_uuid for b in claim.bindings)
        compute = "30" if node == "gpu-b" else "None"
        assert out == [node, control_plane.ray.nodes[node].node_id, uuids, compute]
        workload = control_plane.agent.workload(ADMIN, claim.id)
        assert (workload.state, workload.exit_code) == (WorkloadState.EXITED, 0)
        # As on one machine: the claim is released when its workload ends.
        assert pool.store.get_claim(claim.id).state == ClaimState.RELEASED


def test_exit_code_and_stop_go_through_the_agent(control_plane: ControlPlane) -> None:
    pool = control_plane.pool
    claim = pool.create_claim(ADMIN, ClaimSpec(gpus=1, model="H100*"))
    out = _run_detached(control_plane, claim.id, "import sys; print('bye'); sys.exit(7)")
    assert out == "bye\n"
    assert control_plane.agent.workload(ADMIN, claim.id).exit_code == 7

    claim = pool.create_claim(ADMIN, ClaimSpec(gpus=1, model="H100*"))
    code = "import time; print('up', flush=True); time.sleep(60)"
    control_plane.agent.create_workload(ADMIN, claim.id, [sys.executable, "-c", code], True, None, {})
    wait_for(lambda: control_plane.agent.read_log(ADMIN, claim.id, 0)[0] == b"up\n", 20)
    started = time.monotonic()
    control_plane.agent.stop_workload(ADMIN, claim.id)
    wait_for(lambda: not control_plane.agent.workload(ADMIN, claim.id).state.is_live, 20)
    assert time.monotonic() - started < 5, "SIGTERM reaches the remote process group"
    assert control_plane.agent.workload(ADMIN, claim.id).state == WorkloadState.STOPPED
