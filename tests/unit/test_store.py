"""The store on its own, on SQLite and PostgreSQL: all-or-nothing binds, the invariant, restart."""

from __future__ import annotations

import pytest

from gpupool.devices import SimulatedBackend
from gpupool.errors import CapacityError, Conflict, NotFound
from gpupool.model import Binding, ClaimSpec, ClaimState, Device, Tenant
from gpupool.pool import PoolService
from gpupool.scheduler import make_placer
from gpupool.store import Store

GiB = 1024**3


def _device(uuid: str, index: int = 0, memory: int = 80 * GiB) -> Device:
    return Device(uuid=uuid, node="n0", index=index, model="H100-80GB", memory_total_bytes=memory)


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store(db_url)
    s.sync_devices([_device("GPU-a", 0), _device("GPU-b", 1)])
    return s


def test_bind_is_all_or_nothing(store: Store) -> None:
    first = store.add_claim("t", ClaimSpec(memory_bytes=70 * GiB, compute_percent=10), "", "t")
    store.bind_claim(first.id, [Binding("GPU-b", "n0", 70 * GiB, 10, device_index=1)])
    second = store.add_claim("t", ClaimSpec(gpus=2, memory_bytes=20 * GiB, compute_percent=10), "", "t")
    with pytest.raises(CapacityError):
        store.bind_claim(
            second.id,
            [Binding("GPU-a", "n0", 20 * GiB, 10), Binding("GPU-b", "n0", 20 * GiB, 10, device_index=1)],
        )
    # GPU-a was charged first inside the failed transaction; the rollback must undo it.
    assert store.device_allocations() == {"GPU-a": (0, 0), "GPU-b": (70 * GiB, 10)}
    assert store.get_claim(second.id).state == ClaimState.PENDING
    assert store.get_claim(second.id).bindings == ()


def test_compute_over_100_is_refused(store: Store) -> None:
    for _ in range(4):
        claim = store.add_claim("t", ClaimSpec(memory_bytes=GiB, compute_percent=25), "", "t")
        store.bind_claim(claim.id, [Binding("GPU-a", "n0", GiB, 25)])
    extra = store.add_claim("t", ClaimSpec(memory_bytes=GiB, compute_percent=1), "", "t")
    with pytest.raises(CapacityError):
        store.bind_claim(extra.id, [Binding("GPU-a", "n0", GiB, 1)])


def test_binding_twice_is_a_conflict_and_release_is_idempotent(store: Store) -> None:
    claim = store.add_claim("t", ClaimSpec(memory_bytes=GiB), "", "t")
    store.bind_claim(claim.id, [Binding("GPU-a", "n0", GiB, 2)])
    with pytest.raises(Conflict):
        store.bind_claim(claim.id, [Binding("GPU-a", "n0", GiB, 2)])
    assert store.end_claim(claim.id).state == ClaimState.RELEASED
    assert store.end_claim(claim.id).state == ClaimState.RELEASED
    assert store.device_allocations()["GPU-a"] == (0, 0)
    actions = [e.action for e in store.list_events(claim_id=claim.id)]
    assert actions == ["claim.created", "claim.bound", "claim.released"]


def test_release_by_another_owner_is_not_found_and_changes_nothing(store: Store) -> None:
    claim = store.add_claim("team-a", ClaimSpec(memory_bytes=GiB), "", "team-a")
    store.bind_claim(claim.id, [Binding("GPU-a", "n0", GiB, 2)])
    with pytest.raises(NotFound):
        store.end_claim(claim.id, owner="team-b")
    assert store.get_claim(claim.id).state == ClaimState.BOUND


def test_restart_marks_bindings_on_vanished_devices(db_url: str) -> None:
    db = db_url
    pool = PoolService(Store(db), SimulatedBackend("1x2xH100-80GB"), make_placer())
    pool.start()
    claim = pool.create_claim(Tenant("admin"), ClaimSpec(gpus=2))
    assert claim.state == ClaimState.BOUND

    # Same database, but the node now has one GPU: GPU 1 is gone.
    restarted = PoolService(Store(db), SimulatedBackend("1x1xH100-80GB"), make_placer())
    affected = restarted.start()
    assert [c.id for c in affected] == [claim.id]
    reloaded = restarted.store.get_claim(claim.id)
    assert reloaded.state == ClaimState.BOUND, "never silently dropped"
    assert [b.missing for b in reloaded.bindings] == [False, True]
    events = restarted.store.list_events(claim_id=claim.id)
    assert events[-1].action == "binding.missing"
    assert len(restarted.devices) == 1


def test_restart_reloads_claims_and_allocations(db_url: str) -> None:
    db = db_url
    pool = PoolService(Store(db), SimulatedBackend("1x2xH100-80GB"), make_placer())
    pool.start()
    admin = Tenant("admin")
    bound = pool.create_claim(admin, ClaimSpec(memory_bytes=40 * GiB, compute_percent=50))
    waiting = pool.create_claim(admin, ClaimSpec(gpus=2))
    assert waiting.state == ClaimState.PENDING

    restarted = PoolService(Store(db), SimulatedBackend("1x2xH100-80GB"), make_placer())
    restarted.start()
    assert restarted.store.get_claim(bound.id).state == ClaimState.BOUND
    assert restarted.store.get_claim(waiting.id).state == ClaimState.PENDING
    restarted.release(admin, bound.id)
    assert restarted.store.get_claim(waiting.id).state == ClaimState.BOUND, "freed capacity wakes the queue"
