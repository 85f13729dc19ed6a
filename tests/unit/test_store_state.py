"""The store's in-memory pool state and its group commit, on SQLite and PostgreSQL: what reads see is
exactly what is committed, a refused unit in a batch undoes only itself, and two stores on one
database (two processes, in production) see each other's changes."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest
from sqlalchemy import select

from gpupool.errors import CapacityError
from gpupool.model import Binding, ClaimSpec, ClaimState, Device
from gpupool.store import Store, schema
from gpupool.store.commit import STATE, Tx, _Item

GiB = 1024**3


def _device(uuid: str, index: int) -> Device:
    return Device(uuid=uuid, node="n0", index=index, model="H100-80GB", memory_total_bytes=80 * GiB)


@pytest.fixture
def store(db_url: str) -> Store:
    s = Store(db_url)
    s.sync_devices([_device("GPU-a", 0), _device("GPU-b", 1)])
    return s


def _database_totals(store: Store) -> dict[str, tuple[int, int]]:
    devices = schema.devices
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(devices.c.uuid, devices.c.allocated_memory_bytes, devices.c.allocated_compute_percent)
        ).all()
    return {row.uuid: (int(row[1]), int(row[2])) for row in rows}


def _in_one_batch(store: Store, units: list[Callable[[Tx], Any]]) -> list[Future[Any]]:
    """Commit units as the writer commits one batch (each in its own savepoint)."""
    items = [_Item(unit, STATE, future=Future()) for unit in units]
    store._writer._commit(items)
    return [item.future for item in items if item.future is not None]


def test_reads_match_the_database_after_binds_and_releases(store: Store) -> None:
    claims = [
        store.add_claim(
            "t",
            ClaimSpec(memory_bytes=GiB * (i + 1), compute_percent=5),
            "",
            "t",
            placement=[Binding("GPU-a" if i % 2 else "GPU-b", "n0", GiB * (i + 1), 5, device_index=i % 2)],
        )
        for i in range(6)
    ]
    for claim in claims[::2]:
        store.end_claim(claim.id)
    assert store.device_allocations() == _database_totals(store)
    assert {c.id for c in store.list_claims(states=[ClaimState.BOUND])} == {c.id for c in claims[1::2]}
    ended = store.get_claim(claims[0].id)  # history comes from the database
    assert ended.state == ClaimState.RELEASED and ended.bindings == claims[0].bindings


def test_a_refused_unit_in_a_batch_undoes_only_itself(store: Store) -> None:
    fits = [Binding("GPU-a", "n0", 60 * GiB, 50)]
    both = [Binding("GPU-a", "n0", 30 * GiB, 10), Binding("GPU-b", "n0", 30 * GiB, 10, device_index=1)]
    first = ClaimSpec(memory_bytes=60 * GiB, compute_percent=50)
    second = ClaimSpec(gpus=2, memory_bytes=30 * GiB, compute_percent=10)
    ok, refused, also_ok = _in_one_batch(
        store,
        [
            store._add_claim_unit("t", first, "", "t", fits, None),
            store._add_claim_unit("t", second, "", "t", both, None),  # GPU-b is charged, then GPU-a refuses
            store._add_claim_unit("t", first, "", "t", [Binding("GPU-b", "n0", 60 * GiB, 50, 1)], None),
        ],
    )
    assert ok.result().state == ClaimState.BOUND and also_ok.result().state == ClaimState.BOUND
    assert isinstance(refused.exception(), CapacityError)
    assert store.device_allocations() == {"GPU-a": (60 * GiB, 50), "GPU-b": (60 * GiB, 50)}
    assert store.device_allocations() == _database_totals(store)
    assert len(store.list_claims()) == 2, "the refused claim left nothing behind"


def test_two_stores_on_one_database_see_each_others_changes(db_url: str) -> None:
    first = Store(db_url)
    first.sync_devices([_device("GPU-a", 0)])
    second = Store(db_url)
    claim = first.add_claim("t", ClaimSpec(memory_bytes=GiB), "", "t", [Binding("GPU-a", "n0", GiB, 5)])
    # The second has not written since: its next write notices the generation moved and reloads.
    other = second.add_claim("t", ClaimSpec(memory_bytes=GiB), "", "t", [Binding("GPU-a", "n0", GiB, 5)])
    assert second.device_allocations() == {"GPU-a": (2 * GiB, 10)}
    assert second.get_claim(claim.id).state == ClaimState.BOUND
    # The first has seen no other writer yet; a refresh (the server's periodic pass) finds one.
    assert first.refresh()
    assert first.get_claim(other.id).state == ClaimState.BOUND
    # From now on both know they share the database: every read checks that it is current.
    second.end_claim(claim.id)
    assert first.get_claim(claim.id).state == ClaimState.RELEASED
    assert first.device_allocations() == {"GPU-a": (GiB, 5)} == _database_totals(first)
    assert [c.id for c in first.list_claims(states=[ClaimState.BOUND])] == [other.id]
