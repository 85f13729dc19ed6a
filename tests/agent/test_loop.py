"""The agent's event loop in-process: due events run, a failing one is logged and the loop lives on."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupool.agent import AgentOptions, NodeAgent
from gpupool.agent.events import AgentEvent
from gpupool.devices import SimulatedBackend
from gpupool.model import ClaimSpec, GiB, Tenant
from gpupool.pool import PoolService
from gpupool.scheduler import make_placer
from gpupool.store import Store


class Counting(AgentEvent):
    NAME = "counting"
    runs = 0

    def run(self, now: float) -> None:
        self.runs += 1


class Failing(AgentEvent):
    NAME = "failing"

    def run(self, now: float) -> None:
        raise RuntimeError("boom")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[NodeAgent]:
    pool = PoolService(Store(tmp_path / "pool.db"), SimulatedBackend("1x2xH100-80GB"), make_placer())
    pool.start()
    yield NodeAgent(pool, AgentOptions(state_dir=tmp_path / "state", idle_timeout_s=5.0))
    pool.store.close()


def test_failing_event_is_logged_and_the_loop_lives_on(
    agent: NodeAgent, caplog: pytest.LogCaptureFixture
) -> None:
    counting = Counting(None, interval_s=1.0)
    agent.events = [Failing(None, interval_s=1.0), counting]
    with caplog.at_level(logging.ERROR, logger="gpupool.agent"):
        agent.tick(100.0)
        agent.tick(100.5)  # not due yet
        agent.tick(101.0)
    assert counting.runs == 2
    assert [r.message for r in caplog.records] == ["agent event failing failed; the loop goes on"] * 2


def test_idle_reclaim_uses_the_tenant_override(agent: NodeAgent) -> None:
    pool = agent.pool
    pool.store.create_tenant("team-a", "hash-a")
    team = pool.create_claim(Tenant(name="team-a"), ClaimSpec(memory_bytes=GiB))
    other = pool.create_claim(Tenant(name="admin"), ClaimSpec(memory_bytes=GiB))
    agent.ctx.records.set_idle_timeout("team-a", 0)  # never
    later = max(team.bound_at or 0, other.bound_at or 0, agent.idle.started_at) + 6
    agent.idle.reclaim(later)
    assert pool.store.get_claim(team.id).state.value == "bound"
    assert pool.store.get_claim(other.id).state.value == "released"
    assert agent.idle.timeout_for("team-a") is None and agent.idle.timeout_for("admin") == 5.0
