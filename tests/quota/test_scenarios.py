"""Declarative quota scenarios on a real in-process pool: guarantee, borrowing, limits, fair
share between tenants, and preemption (which claim, with which events, and which never; victims
keep their devices through the grace period and the waiting claim binds only after they end)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from quota_harness import BOUND, PENDING, PREEMPTED, Scenario

from gpupool.model import Tenant

GiB = 1024**3


@pytest.fixture
def tmp(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path


def test_guarantee_is_respected_by_preempting_borrowers(tmp: Path) -> None:
    s = Scenario.start(tmp, team_a=("2gpu", "4gpu"), team_b=("none", "none"))
    for i in range(4):
        s.claim(f"b{i}", "team-b", gpus=1, preemptible=True)
    assert set(s.states().values()) == {BOUND}, "an idle pool lends everything to team-b"

    before = time.time()
    waiting = s.claim("a", "team-a", gpus=2)
    # The two most recently bound (least run time lost) are preempted, but keep their GPUs
    # through the grace period: the waiting claim is not bound on memory still in use.
    assert s.states() == {"b0": BOUND, "b1": BOUND, "b2": BOUND, "b3": BOUND, "a": PENDING}
    assert s.preempting() == {"b2", "b3"}
    deadline = s.get("b3").preempt_deadline
    assert deadline is not None and before + 30 <= deadline <= time.time() + 30
    assert waiting.reason.startswith("waiting for 2 preempted claim(s) to stop (grace until ")
    victim = s.get("b3")
    assert s.claims["a"] in victim.reason and "guarantee" in victim.reason
    [marked] = [e for e in s.events("b3") if e.action == "claim.preempting"]
    assert marked.details["deadline"] == deadline and marked.details["for_claim"] == s.claims["a"]

    s.pool.schedule()  # later passes wait for the same victims: nobody else is picked
    assert s.preempting() == {"b2", "b3"} and s.get("a").state.value == PENDING

    s.release("b3")  # its owner stopped the workload and released: that ends it as preempted
    assert s.get("b3").state.value == PREEMPTED and s.claims["a"] in s.get("b3").reason
    assert s.actions("b3") == ["claim.created", "claim.bound", "claim.preempting", "claim.preempted"]
    assert s.get("a").state.value == PENDING, "b2 still runs on the GPU a needs"
    assert s.get("a").reason.startswith("waiting for 1 preempted claim(s) to stop")

    s.expire()  # b2's owner never reacts: the pool's pass ends it at its deadline
    assert s.states() == {"b0": BOUND, "b1": BOUND, "b2": PREEMPTED, "b3": PREEMPTED, "a": BOUND}
    assert s.events("b2")[-1].details == {"reason": s.get("b2").reason, "stopped": "grace period over"}
    assert s.actions("a") == ["claim.created", "claim.preempts", "claim.bound"]
    [preempts] = [e for e in s.events("a") if e.action == "claim.preempts"]
    assert sorted(preempts.details["victims"]) == sorted([s.claims["b2"], s.claims["b3"]])
    freed = {b.device_uuid for label in ("b2", "b3") for b in s.get(label).bindings}
    assert {b.device_uuid for b in s.get("a").bindings} == freed
    s.close()


def test_room_promised_to_a_waiting_claim_is_kept_for_it(tmp: Path) -> None:
    s = Scenario.start(tmp, team_a=("2gpu", "4gpu"), team_b=("none", "none"))
    for i in range(3):
        s.claim(f"b{i}", "team-b", gpus=1, preemptible=True)
    s.claim("a", "team-a", gpus=2)  # one free GPU plus one victim
    assert s.preempting() == {"b2"} and s.get("a").state.value == PENDING
    # A higher-priority claim arriving now must not take the free GPU that `a` was promised.
    late = s.claim("late", "admin", gpus=1, priority=10)
    assert late.state.value == PENDING
    s.release("b2")
    assert (s.get("a").state.value, s.get("late").state.value) == (BOUND, PENDING)
    assert s.get("b2").state.value == PREEMPTED
    s.close()


def test_admin_preempt_uses_the_grace_period(tmp: Path) -> None:
    s = Scenario.start(tmp, grace_s=5.0)
    held = s.claim("held", "team-b", gpus=4)
    s.claim("next", "team-c", gpus=1)
    admin = Tenant(name="admin")
    claim = s.pool.preempt(admin, held.id)
    assert claim.state.value == BOUND and claim.preempting and claim.reason == "preempted by the admin"
    with pytest.raises(Exception, match="already preempting"):
        s.pool.preempt(admin, held.id)
    assert s.get("next").state.value == PENDING
    s.expire()
    assert (s.get("held").state.value, s.get("next").state.value) == (PREEMPTED, BOUND)
    s.close()


def test_borrowing_above_the_guarantee_needs_preemptible_claims_and_stops_at_the_limit(tmp: Path) -> None:
    s = Scenario.start(tmp, "2x4xH100-80GB", team_a=("1gpu", "3gpu"))
    s.claim("in", "team-a", gpus=1)
    s.claim("borrow", "team-a", gpus=1, preemptible=True)
    assert (s.get("in").state.value, s.get("borrow").state.value) == (BOUND, BOUND)

    firm = s.claim("firm", "team-a", gpus=1)
    assert firm.state.value == PENDING
    assert firm.reason.startswith("quota: beyond the guarantee of team-a")

    over = s.claim("over", "team-a", gpus=2, preemptible=True)
    assert over.state.value == PENDING
    assert over.reason.startswith("quota: limit of team-a is 3 GPU")

    s.release("borrow")
    assert s.get("over").state.value == BOUND, "room under the limit again: the borrower binds"
    assert s.get("firm").state.value == PENDING, "still beyond the guarantee and not preemptible"
    s.close()


def test_memory_limit_holds_a_fractional_claim(tmp: Path) -> None:
    s = Scenario.start(tmp, team_a=("none", "30GiB"))
    s.claim("small", "team-a", memory_bytes=20 * GiB, compute_percent=10)
    big = s.claim("big", "team-a", memory_bytes=20 * GiB, compute_percent=10)
    assert s.get("small").state.value == BOUND
    assert big.state.value == PENDING and big.reason.startswith("quota: memory limit of team-a is 30GiB")
    s.close()


def test_fair_share_puts_the_lighter_tenant_first(tmp: Path) -> None:
    s = Scenario.start(tmp, team_a=("none", "none"), team_b=("none", "none"))
    s.claim("a-holds", "team-a", gpus=2)
    s.claim("blocker", "admin", gpus=2)
    s.claim("a-next", "team-a", gpus=1)  # arrives first ...
    s.claim("b-next", "team-b", gpus=1)  # ... but team-b holds nothing
    assert (s.position("b-next"), s.position("a-next")) == (1, 2)

    s.release("blocker")  # frees two GPUs: both bind, team-b's first
    assert s.get("b-next").state.value == BOUND and s.get("a-next").state.value == BOUND
    assert s.get("b-next").bound_at <= s.get("a-next").bound_at  # type: ignore[operator]
    s.close()


def test_priority_orders_claims_within_a_tenant(tmp: Path) -> None:
    s = Scenario.start(tmp)
    s.claim("blocker", "admin", gpus=4)
    s.claim("low", "team-a", gpus=1, priority=0)
    s.claim("high", "team-a", gpus=1, priority=10)
    assert (s.position("high"), s.position("low")) == (1, 2)
    s.close()


def test_preemption_picks_the_cheapest_claim(tmp: Path) -> None:
    s = Scenario.start(tmp, team_a=("1gpu", "1gpu"), team_b=("none", "none"))
    s.claim("b-firm", "team-b", gpus=1)  # not preemptible: never a victim
    s.claim("b-high", "team-b", gpus=1, preemptible=True, priority=5)
    s.claim("b-old", "team-b", gpus=1, preemptible=True)
    s.claim("b-new", "team-b", gpus=1, preemptible=True)
    s.claim("a", "team-a", gpus=1)
    assert s.preempting() == {"b-new"}  # lowest priority, least run time lost
    s.expire()
    assert s.states() == {
        "b-firm": BOUND,
        "b-high": BOUND,
        "b-old": BOUND,
        "b-new": PREEMPTED,
        "a": BOUND,
    }
    assert s.get("a").bindings[0].device_uuid == s.get("b-new").bindings[0].device_uuid
    s.close()


def test_in_guarantee_claims_are_never_preempted(tmp: Path) -> None:
    s = Scenario.start(tmp, team_a=("2gpu", "4gpu"), team_b=("2gpu", "4gpu"))
    s.claim("b0", "team-b", gpus=1, preemptible=True)  # preemptible, but within team-b's guarantee
    s.claim("b1", "team-b", gpus=1, preemptible=True)
    s.claim("admin", "admin", gpus=2)  # not preemptible
    waiting = s.claim("a", "team-a", gpus=2)
    assert waiting.state.value == PENDING
    assert s.states() == {"b0": BOUND, "b1": BOUND, "admin": BOUND, "a": PENDING}
    actions = {e.action for e in s.pool.store.list_events(limit=1000)}
    assert not actions & {"claim.preempting", "claim.preempted"} and not s.preempting()
    s.close()


def test_only_the_part_above_a_guarantee_is_evictable(tmp: Path) -> None:
    s = Scenario.start(tmp, team_a=("2gpu", "4gpu"), team_b=("1gpu", "4gpu"))
    s.claim("b-in", "team-b", gpus=1, preemptible=True)  # inside team-b's 1 GPU guarantee
    s.claim("b-over", "team-b", gpus=1, preemptible=True)  # borrowed
    s.claim("fill", "admin", gpus=2)
    s.claim("a", "team-a", gpus=1)
    assert s.get("a").state.value == PENDING and s.preempting() == {"b-over"}
    s.expire()
    states = s.states()
    assert states["a"] == BOUND
    # Evicting either leaves team-b at its guarantee; the newer one (less run time lost) goes.
    assert (states["b-in"], states["b-over"]) == (BOUND, PREEMPTED)
    s.claim("a2", "team-a", gpus=1)
    assert s.get("a2").state.value == PENDING, "team-b is at its guarantee now: nothing to preempt"
    assert s.get("b-in").state.value == BOUND
    s.close()
