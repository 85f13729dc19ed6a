"""The watcher's readmission rule, on real agent actors: a node lost with proof of death never comes
back through a lingering agent; one lost by missed pings alone comes back once it answers again.

CI caught the first case: after a raylet was SIGKILLed, its agent's worker process still answered
pings for a moment, and the node (and its devices) came back right after being lost.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import ray
from raycluster import LocalRayCluster

from gpupool.cluster import MembershipWatcher, NodeRecord, RayBackend, handles


@pytest.fixture
def ghost(ray_cluster: LocalRayCluster) -> Iterator[NodeRecord]:
    """A record for a real agent actor on the head node, under a made-up Ray id and raylet port."""
    head_id = ray_cluster.nodes["head"].node_id
    actor = handles.start_agent(head_id, "ghost", "1x1xT4")
    ray.get(actor.report.remote(), timeout=60)
    record = NodeRecord(name="ghost", ray_node_id="ghost-id", address="127.0.0.1", raylet_port=0,
                        actor=actor, state="alive")  # fmt: skip
    try:
        yield record
    finally:
        handles.kill(actor)


def _watcher(record: NodeRecord) -> MembershipWatcher:
    watcher = MembershipWatcher(RayBackend(), ping_timeout_s=10.0)
    watcher.backend.put(record)
    watcher._by_ray_id[record.ray_node_id] = record
    return watcher


def test_a_lost_node_whose_raylet_refuses_connections_is_not_readmitted(ghost: NodeRecord) -> None:
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        ghost.raylet_port = probe.getsockname()[1]
    watcher = _watcher(ghost)
    watcher._lose(ghost, "no answer to a ping (2 in a row)")
    for _ in range(3):
        watcher._ping({"ghost-id": {"Alive": True}})  # Ray still calls it alive; the actor answers
    assert (ghost.state, ghost.dead) == ("lost", True)
    assert watcher.backend.devices() == []


def test_a_node_lost_with_proof_of_death_is_never_pinged_again(ghost: NodeRecord) -> None:
    watcher = _watcher(ghost)
    watcher._lose(ghost, "agent gone (RayActorError)", dead=True)
    watcher._ping({"ghost-id": {"Alive": True}})
    assert ghost.state == "lost"


def test_a_node_lost_by_missed_pings_alone_is_readmitted_when_it_answers(ghost: NodeRecord) -> None:
    with socket.socket() as raylet:  # something listens where the raylet should
        raylet.bind(("127.0.0.1", 0))
        raylet.listen()
        ghost.raylet_port = raylet.getsockname()[1]
        watcher = _watcher(ghost)
        watcher._lose(ghost, "no answer to a ping (2 in a row)")
        watcher._ping({"ghost-id": {"Alive": True}})
    assert (ghost.state, ghost.dead) == ("alive", False)
