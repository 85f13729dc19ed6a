"""`gpupool.ray.remote`: a Ray task or actor claims a vGPU, runs pinned to the bound node with the
claim's environment, and gives the claim back when done."""

from __future__ import annotations

import os
import sys
from typing import Any

import ray
from clusterctl import ControlPlane, wait_for
from ray import cloudpickle

import gpupool.ray
from gpupool.model import ClaimState
from serverctl import ADMIN_TOKEN

# Ray workers cannot import test modules by name: ship this module's functions by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _where() -> tuple[str, str, str, str]:
    env = os.environ
    node = ray.get_runtime_context().get_node_id()
    return (
        node,
        env["CUDA_VISIBLE_DEVICES"],
        env["GPUPOOL_COMPUTE_PERCENT"],
        env["GPUPOOL_MEMORY_LIMIT_BYTES"],
    )


def _active(plane: ControlPlane) -> list[Any]:
    return plane.pool.store.list_claims(states=[ClaimState.BOUND, ClaimState.PENDING])


def test_a_task_runs_on_its_claims_node_with_its_env_and_releases_it(control_plane: ControlPlane) -> None:
    where = gpupool.ray.remote(
        memory="10GiB", compute=25, model="A100*", url=control_plane.url, token=ADMIN_TOKEN
    )(_where)
    node_id, uuids, compute, memory = ray.get(where.remote(), timeout=60)
    assert node_id == control_plane.ray.nodes["gpu-b"].node_id
    assert uuids in control_plane.devices_on("gpu-b")
    assert (compute, memory) == ("25", str(10 << 30))
    wait_for(lambda: not _active(control_plane), 10)


class Worker:
    def where(self) -> tuple[str, str, str, str]:
        return _where()


def test_an_actor_holds_its_claim_until_released(control_plane: ControlPlane) -> None:
    actor_class = gpupool.ray.remote(memory="20GiB", compute=50, url=control_plane.url, token=ADMIN_TOKEN)(
        Worker
    )
    with actor_class.remote() as actor:
        node_id, uuids, compute, _memory = ray.get(actor.where.remote(), timeout=60)
        bound = _active(control_plane)
        assert [c.id for c in bound] == [actor.claim.id]
        assert uuids == bound[0].bindings[0].device_uuid
        assert node_id == control_plane.cluster.ray_node_id(bound[0].bindings[0].node)
        assert compute == "50"
    wait_for(lambda: not _active(control_plane), 10)
