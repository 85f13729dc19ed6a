"""`PoolService.assess_nodes` and `claim_on_node`: placement for front doors whose own scheduler
picks the node (Kubernetes), on a real pool (SQLite store, simulated devices, default policy)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.devices import SimulatedBackend
from gpupool.errors import CapacityError
from gpupool.model import ClaimSpec, ClaimState, GiB, Tenant
from gpupool.model.quota import QuotaUpdate
from gpupool.pool import PoolService
from gpupool.scheduler import make_placer
from gpupool.store import Store
from gpupool.store.quotas import QuotaRecords

NODES = ["sim-node-0", "sim-node-1"]


@pytest.fixture()
def pool(tmp_path: Path) -> PoolService:
    started = PoolService(Store(tmp_path / "pool.db"), SimulatedBackend("2x2xH100-80GB"), make_placer())
    started.start()
    return started


def test_assess_then_claim_on_the_chosen_node(pool: PoolService) -> None:
    spec = ClaimSpec(memory_bytes=30 * GiB)
    verdicts = pool.assess_nodes("team-a", spec, [*NODES, "not-in-pool"])
    assert [v.node for v in verdicts] == [*NODES, "not-in-pool"]
    assert [v.fits for v in verdicts] == [True, True, False]
    assert verdicts[2].reason == "no gpupool device on this node"
    assert sum(v.best for v in verdicts) == 1
    claim = pool.claim_on_node(Tenant("team-a"), spec, "sim-node-1")
    assert claim.state == ClaimState.BOUND and {b.node for b in claim.bindings} == {"sim-node-1"}
    assert pool.store.list_events(claim_id=claim.id)[0].actor == "team-a"


def test_claim_on_a_full_node_records_nothing(pool: PoolService) -> None:
    pool.claim_on_node(Tenant("a"), ClaimSpec(gpus=2), "sim-node-0")
    before = pool.store.list_claims()
    with pytest.raises(CapacityError, match="sim-node-0: no device with all memory and compute free"):
        pool.claim_on_node(Tenant("a"), ClaimSpec(), "sim-node-0")
    assert pool.store.list_claims() == before
    verdicts = pool.assess_nodes("a", ClaimSpec(), NODES)
    assert [v.fits for v in verdicts] == [False, True]
    assert "all memory and compute" in verdicts[0].reason


def test_quota_fails_every_node_and_the_claim(pool: PoolService) -> None:
    pool.store.create_tenant("team-q", "hash-q")
    QuotaRecords(pool.store).set_quota(QuotaUpdate(limit="1gpu").to_quota("team-q"), "admin")
    pool.claim_on_node(Tenant("team-q"), ClaimSpec(), "sim-node-0")
    verdicts = pool.assess_nodes("team-q", ClaimSpec(), NODES)
    assert not any(v.fits for v in verdicts)
    assert all(v.reason.startswith("quota: limit of team-q is 1 GPU") for v in verdicts)
    with pytest.raises(CapacityError, match="quota: limit of team-q"):
        pool.claim_on_node(Tenant("team-q"), ClaimSpec(), "sim-node-1")
    assert [v.fits for v in pool.assess_nodes("other", ClaimSpec(), NODES)] == [True, True]


def test_room_promised_to_a_waiting_claim_is_not_given_away(pool: PoolService) -> None:
    """While preempted claims drain for an in-guarantee claim, a pod may not take that room."""
    pool.preempt_grace_s = 60.0
    pool.store.create_tenant("vip", "hash-vip")
    QuotaRecords(pool.store).set_quota(QuotaUpdate(guarantee="4gpu").to_quota("vip"), "admin")
    for node in NODES:
        pool.claim_on_node(Tenant("borrower"), ClaimSpec(gpus=2, preemptible=True), node)
    waiting = pool.create_claim(Tenant("vip"), ClaimSpec(gpus=2))
    assert waiting.state == ClaimState.PENDING and waiting.reason.startswith("waiting")
    verdicts = pool.assess_nodes("someone", ClaimSpec(memory_bytes=GiB), NODES)
    assert not any(v.fits for v in verdicts)
    assert "promised" in verdicts[0].reason
