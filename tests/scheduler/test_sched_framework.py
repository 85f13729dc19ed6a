"""The framework alone, driven by fake plugins: filter masks, weighted scores, tie-break, Statement."""

from __future__ import annotations

import pytest
from sched_builders import ClusterBuilder, share, whole
from sched_fakes import AlwaysFail, AlwaysPass, FirstSlots, FixedScore, OnlyNodes

from gpupool.errors import CapacityError
from gpupool.scheduler.cluster import Allocation, Cluster
from gpupool.scheduler.framework import PluginContext, Scheduler
from gpupool.scheduler.plugins.fit import GpuFit
from gpupool.scheduler.registry import DEFAULT_REGISTRY, Registry
from gpupool.scheduler.request import Request
from gpupool.scheduler.statement import Statement
from gpupool.scheduler.status import Code


def three_nodes() -> ClusterBuilder:
    return ClusterBuilder().node("a", gpus=2).node("b", gpus=2).node("c", gpus=2)


@pytest.mark.parametrize(
    ("filters", "scores", "expected"),
    [
        ([AlwaysPass()], [(FixedScore([1, 3, 2]), 1.0)], 1),
        ([AlwaysPass()], [(FixedScore([5, 5, 5]), 1.0)], 0),
        ([OnlyNodes(1, 2)], [(FixedScore([9, 1, 1]), 1.0)], 1),
        ([AlwaysPass()], [(FixedScore([1, 0, 0]), 1.0), (FixedScore([0, 0, 2]), 1.0)], 2),
        ([AlwaysPass()], [(FixedScore([1, 0, 0]), 3.0), (FixedScore([0, 0, 2]), 1.0)], 0),
        ([AlwaysPass(), OnlyNodes(2)], [], 2),
    ],
    ids=["highest-wins", "tie-lowest-name", "filtered-out-best", "sum", "weights", "single-candidate"],
)
def test_decision(filters: list[object], scores: list[tuple[FixedScore, float]], expected: int) -> None:
    scheduler = Scheduler("fake", filters, scores, FirstSlots())  # type: ignore[arg-type]
    decision = scheduler.decide(whole(), three_nodes().build())
    assert decision.status.ok
    assert decision.node == expected


def test_scores_see_only_filtered_nodes() -> None:
    score = FixedScore([0, 0, 0])
    Scheduler("fake", [OnlyNodes(0, 2)], [(score, 1.0)], FirstSlots()).decide(whole(), three_nodes().build())
    assert score.seen == [[0, 2]]


def test_failing_filter_reason_reaches_the_caller() -> None:
    decision = Scheduler("fake", [AlwaysFail()], [], FirstSlots()).decide(whole(), three_nodes().build())
    assert decision.status.code is Code.UNSCHEDULABLE
    assert decision.status.reason == AlwaysFail.REASON
    assert decision.status.plugin == AlwaysFail.NAME


def test_schedule_binds_whole_claim() -> None:
    cluster = three_nodes().build()
    _, allocation = Scheduler("fake", [AlwaysPass()], [], FirstSlots()).schedule(whole(2), cluster)
    assert allocation is not None and allocation.gpus == (0, 1)
    assert cluster.gpu_free_milli[0].tolist() == [0, 0]


def test_statement_rolls_back_everything_on_error() -> None:
    cluster = three_nodes().build()
    before = cluster.gpu_free_milli.copy()
    with pytest.raises(CapacityError), Statement(cluster) as statement:
        statement.allocate(share(500), 0, (0,))
        statement.allocate(whole(1), 0, (0,))  # GPU 0 is no longer whole: over-commit refused
    assert (cluster.gpu_free_milli == before).all()
    assert cluster.cpu_free_milli.tolist() == cluster.cpu_total_milli.tolist()


def test_statement_commit_keeps_allocations() -> None:
    cluster = three_nodes().build()
    statement = Statement(cluster)
    statement.allocate(share(300), 1, (1,))
    assert len(statement.commit()) == 1
    assert cluster.gpu_free_milli[1, 1] == 700


def test_registry_refuses_duplicates_and_names_unknown() -> None:
    registry = Registry({"x": lambda args, ctx: AlwaysPass()})
    with pytest.raises(ValueError, match="already registered"):
        registry.register("x", lambda args, ctx: AlwaysPass())
    with pytest.raises(KeyError, match="unknown plugin 'y'"):
        registry.create("y", {}, PluginContext())
    assert "fgd" in DEFAULT_REGISTRY.names()


class MoveAction:
    """Fake second pass: moves the claim on node 0 to node 1, then places the request on node 0."""

    NAME = "move"

    def __init__(self, held: Allocation, fail_at_end: bool = False) -> None:
        self.held = held
        self.fail_at_end = fail_at_end

    def run(
        self, scheduler: Scheduler, request: Request, cluster: Cluster
    ) -> tuple[Allocation, list[int]] | None:
        statement = Statement(cluster)
        statement.release(self.held)
        assert self.held.request is not None
        statement.allocate(self.held.request, 1, self.held.gpus)
        try:
            placed = statement.allocate(
                whole(2 if self.fail_at_end else 1), 0, (0, 1) if self.fail_at_end else (0,)
            )
            if self.fail_at_end:
                raise CapacityError("forced")
        except CapacityError:
            statement.rollback()
            return None
        statement.commit()
        return placed, [0, 1]


@pytest.mark.parametrize("fail_at_end", [False, True], ids=["moves-and-places", "rolls-back-the-move"])
def test_action_runs_for_a_claim_no_node_fits(fail_at_end: bool) -> None:
    cluster = ClusterBuilder().node("a", gpus=2).node("b", gpus=2).build()
    held = cluster.allocate(share(600), 0, (0,))
    cluster.allocate(whole(1), 0, (1,))
    before = cluster.gpu_free_milli.copy()
    scheduler = Scheduler(
        "fake", [GpuFit(), OnlyNodes(0)], [], FirstSlots(), actions=[MoveAction(held, fail_at_end)]
    )
    decision, allocation = scheduler.schedule(whole(1), cluster)
    if fail_at_end:
        assert allocation is None and not decision.status.ok
        assert (cluster.gpu_free_milli == before).all()
        assert cluster.occupants[(0, 0)] == [held]
    else:
        assert allocation is not None and (allocation.node, allocation.gpus) == (0, (0,))
        assert scheduler.touched == [0, 1]
        assert cluster.gpu_free_milli.tolist() == [[0, 0], [400, 1000]]
