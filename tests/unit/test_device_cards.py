"""The shared device cards: exactly the `DeviceCard`s the straightforward way gives (a fresh view
of every device, validated models), each viewer masked as before; an unchanged card stays the same
object; a change of state, telemetry or inventory is seen; the stream's delta holds what changed."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gpupool.api.convert import claim_public
from gpupool.api.device_cards import DeviceCards, ViewerCards
from gpupool.api.overview import ViewerMemo, build_overview
from gpupool.api.overview_diff import OverviewDiffer
from gpupool.devices import SimulatedBackend
from gpupool.model import ClaimSpec, GiB, Tenant
from gpupool.model.overview import DeviceCard, Overview, Segment
from gpupool.model.tenant import ADMIN
from gpupool.model.vm import VM_DOMAIN_LABEL
from gpupool.pool import PoolService
from gpupool.scheduler import make_placer
from gpupool.store import Store

TEAM_A, TEAM_B, ADMIN_VIEWER = Tenant("team-a"), Tenant("team-b"), Tenant(ADMIN)


def reference(pool: PoolService, viewer: Tenant) -> list[dict[str, object]]:
    """The cards as `build_overview` made them before they were shared: one `DeviceCard` per
    device view, segments from the bound claims (newest first), masked for a tenant."""
    bound = pool.store.list_claims(states=["bound"])
    segments: dict[str, list[Segment]] = {}
    for claim in bound:
        mine = viewer.is_admin or claim.tenant == viewer.name
        for binding in claim.bindings:
            segments.setdefault(binding.device_uuid, []).append(
                Segment(
                    claim_id=claim.id if mine else "",
                    tenant=claim.tenant if mine else "other",
                    memory_bytes=binding.memory_bytes,
                    compute_percent=binding.compute_percent,
                    holder=claim.spec.labels.get(VM_DOMAIN_LABEL) if mine else None,
                )
            )
    return [
        DeviceCard(
            uuid=view.device.uuid,
            node=view.device.node,
            index=view.device.index,
            model=view.device.model,
            memory_total_bytes=view.device.memory_total_bytes,
            memory_allocated_bytes=view.allocated_memory_bytes,
            compute_allocated_percent=view.allocated_compute_percent,
            memory_used_bytes=view.telemetry.memory_used_bytes if view.telemetry else None,
            utilization_percent=view.telemetry.utilization_percent if view.telemetry else None,
            segments=segments.get(view.device.uuid, []),
        ).model_dump(mode="json")
        for view in pool.device_views()
    ]


@pytest.fixture
def pool(tmp_path: Path) -> PoolService:
    backend = SimulatedBackend("2x4xH100-80GB", clock=lambda: 1000.0)  # telemetry: no wobble in time
    pool = PoolService(Store(tmp_path / "pool.db"), backend, make_placer())
    pool.start()
    return pool


def test_cards_equal_the_straightforward_ones_for_every_viewer(pool: PoolService) -> None:
    pool.create_claim(TEAM_A, ClaimSpec(memory_bytes=10 * GiB, compute_percent=25))
    pool.create_claim(TEAM_B, ClaimSpec(memory_bytes=20 * GiB, compute_percent=50))
    pool.create_claim(TEAM_A, ClaimSpec(gpus=2, labels={VM_DOMAIN_LABEL: "web-1"}))
    pool.create_claim(TEAM_B, ClaimSpec(memory_bytes=5 * GiB, compute_percent=10))
    shared = DeviceCards(pool)
    for viewer in (ADMIN_VIEWER, TEAM_A, TEAM_B, Tenant("nobody")):
        cards = ViewerCards(viewer)(shared.cards(pool.sample_telemetry(), None))
        assert cards == reference(pool, viewer), viewer
    # some card holds two tenants' segments, and some utilization is not zero (the simulated
    # devices follow what is bound): the comparison above covered masking and telemetry
    cards = shared.cards(pool.sample_telemetry(), None)
    assert any(len({s["tenant"] for s in c["segments"]}) == 2 for c in cards)
    assert any(c["utilization_percent"] for c in cards)
    assert any(s["holder"] == "web-1" for c in cards for s in c["segments"])


def test_an_unchanged_card_is_the_same_object_and_changes_are_seen(pool: PoolService) -> None:
    shared = DeviceCards(pool)
    telemetry = pool.sample_telemetry()
    first = shared.cards(telemetry, 1)
    assert shared.cards(telemetry, 1) is first  # same state, same sample: not rebuilt

    claim = pool.create_claim(TEAM_A, ClaimSpec(memory_bytes=10 * GiB, compute_percent=25))
    second = shared.cards(telemetry, 1)  # a commit moved the state
    (device,) = [b.device_uuid for b in claim.bindings]
    moved = [new for old, new in zip(first, second, strict=True) if old is not new]
    assert [card["uuid"] for card in moved] == [device]
    assert moved[0]["segments"][0]["claim_id"] == claim.id

    telemetry = pool.sample_telemetry()  # its utilization now follows the claim
    third = shared.cards(telemetry, 2)
    assert [c["uuid"] for old, c in zip(second, third, strict=True) if old is not c] == [device]
    assert third[[c["uuid"] for c in third].index(device)]["utilization_percent"] > 0


def test_a_tenant_keeps_its_masked_copy_while_the_card_is_unchanged(pool: PoolService) -> None:
    pool.create_claim(TEAM_B, ClaimSpec(memory_bytes=10 * GiB, compute_percent=25))
    shared, mine = DeviceCards(pool), ViewerCards(TEAM_A)
    telemetry = pool.sample_telemetry()
    first = mine(shared.cards(telemetry, 1))
    (masked,) = [c for c in first if c["segments"]]
    assert masked["segments"][0] | {} == {
        "claim_id": "",
        "tenant": "other",
        "memory_bytes": 10 * GiB,
        "compute_percent": 25,
        "holder": None,
    }
    pool.create_claim(TEAM_A, ClaimSpec(gpus=1))
    second = mine(shared.cards(telemetry, 1))
    assert masked in second and any(c is masked for c in second)  # same object, not re-masked
    assert sum(old is not new for old, new in zip(first, second, strict=True)) == 1  # team-a's GPU


def test_the_stream_delta_holds_only_the_changed_cards(pool: PoolService) -> None:
    differ, memo = OverviewDiffer(), ViewerMemo.of(TEAM_A)
    whole = differ.full(build_overview(pool, TEAM_A, memo=memo))
    assert len(whole["devices"]) == 8
    Overview.model_validate(whole)  # what is sent is an `Overview`
    kind, delta = differ.delta(build_overview(pool, TEAM_A, memo=memo))
    assert kind == "delta" and delta["devices"] == []
    claim = pool.create_claim(TEAM_A, ClaimSpec(memory_bytes=10 * GiB, compute_percent=25))
    kind, delta = differ.delta(build_overview(pool, TEAM_A, memo=memo))
    assert kind == "delta"
    assert [s["claim_id"] for card in delta["devices"] for s in card["segments"]] == [claim.id]
    assert [c["id"] for c in delta["claims"]] == [claim.id]


def test_a_new_inventory_rebuilds_the_cards(tmp_path: Path) -> None:
    backend = SimulatedBackend("1x2xH100-80GB")
    pool = PoolService(Store(tmp_path / "pool.db"), backend, make_placer())
    pool.start()
    shared = DeviceCards(pool)
    telemetry = pool.sample_telemetry()
    first = shared.cards(telemetry, 1)
    pool.refresh_devices()  # same devices, re-read: the cache may not assume they are
    second = shared.cards(telemetry, 1)
    assert second is not first and second == first


def test_built_step_by_step_equals_built_afresh(pool: PoolService) -> None:
    """Claims come and go (whole GPUs, shares, a VM's), samples change: after every step the cards
    kept up to date by differences equal cards built from nothing, and the overview's claim lists
    equal freshly serialised ones."""
    rng = random.Random(7)
    kept, memo = DeviceCards(pool), ViewerMemo.of(ADMIN_VIEWER)
    sample_id, telemetry = 1, pool.sample_telemetry()
    held: list[str] = []
    for step in range(60):
        roll = rng.random()
        if roll < 0.45 or not held:
            tenant = rng.choice([TEAM_A, TEAM_B])
            spec = rng.choice(
                [
                    ClaimSpec(memory_bytes=rng.randint(1, 30) * GiB, compute_percent=rng.randint(1, 40)),
                    ClaimSpec(gpus=rng.randint(1, 2)),
                    ClaimSpec(
                        memory_bytes=4 * GiB, compute_percent=5, labels={VM_DOMAIN_LABEL: f"vm-{step}"}
                    ),
                ]
            )
            held.append(pool.create_claim(tenant, spec).id)
        elif roll < 0.85:
            claim_id = held.pop(rng.randrange(len(held)))
            pool.release(ADMIN_VIEWER, claim_id)
        else:  # a new telemetry sample (the hub's numbering: a new number, new values)
            sample_id, telemetry = sample_id + 1, pool.sample_telemetry()
        assert kept.cards(telemetry, sample_id) == DeviceCards(pool).cards(telemetry, None), step
        overview = build_overview(pool, ADMIN_VIEWER, memo=memo)
        bound = pool.store.list_claims(states=["bound"])
        assert overview["claims"] == [claim_public(c).model_dump(mode="json") for c in bound], step
        assert [c["queue_position"] for c in overview["queue"]] == list(range(1, len(overview["queue"]) + 1))


def test_a_claim_replaced_by_one_of_the_same_size_is_seen(tmp_path: Path) -> None:
    """Same totals on the device, another claim on it: found by its segments, not its totals."""
    backend = SimulatedBackend("1x1xH100-80GB", clock=lambda: 1000.0)
    pool = PoolService(Store(tmp_path / "pool.db"), backend, make_placer())
    pool.start()
    spec = ClaimSpec(memory_bytes=10 * GiB, compute_percent=25)
    first = pool.create_claim(TEAM_A, spec)
    shared, telemetry = DeviceCards(pool), pool.sample_telemetry()
    (card,) = shared.cards(telemetry, 1)
    pool.release(TEAM_A, first.id)
    second = pool.create_claim(TEAM_B, spec)
    (again,) = shared.cards(telemetry, 1)
    assert [s["claim_id"] for s in card["segments"]] == [first.id]
    assert [(s["claim_id"], s["tenant"]) for s in again["segments"]] == [(second.id, "team-b")]
