"""The plugin contract and the `Scheduler` that runs one profile: filter -> score -> select -> reserve.

Plugins see whole-cluster arrays: a filter returns a bool mask over nodes, a score returns one
float per candidate node, a picker chooses GPU slots inside the chosen node. Ties go to the
lowest node index (nodes are sorted by name), as in the FGD artifact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Allocation, Cluster
from gpupool.scheduler.frag import TargetWorkload
from gpupool.scheduler.request import IMPOSSIBLE_DEMAND, Request
from gpupool.scheduler.statement import Statement
from gpupool.scheduler.status import SUCCESS, Code, Status, unschedulable

CycleState = dict[str, Any]  # per-decision scratch space shared by the plugins of one cycle


@runtime_checkable
class FilterPlugin(Protocol):
    NAME: str

    def filter(
        self, request: Request, cluster: Cluster, cycle: CycleState
    ) -> tuple[NDArray[np.bool_], Status]:
        """Bool per node: can the request run there; a non-success Status explains an all-false mask."""
        ...


@runtime_checkable
class SlotFilterPlugin(Protocol):
    NAME: str

    def filter_slots(
        self, request: Request, cluster: Cluster, allowed: NDArray[np.bool_] | None, cycle: CycleState
    ) -> tuple[NDArray[np.bool_] | None, Status]:
        """Bool per (node, slot): may one vGPU of the request go on that GPU; None: no restriction.

        `allowed`: the GPUs the earlier slot filters left (None: all). The Status says why this
        plugin rules out the allowed GPUs it rules out; when the rules together leave no node
        enough GPUs, the reasons of every plugin that ruled some out are reported together.
        """
        ...


@runtime_checkable
class ScorePlugin(Protocol):
    NAME: str

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        """One score per candidate node (higher is better), aligned with `nodes`."""
        ...


@runtime_checkable
class GpuPicker(Protocol):
    NAME: str

    def pick(self, request: Request, cluster: Cluster, node: int, cycle: CycleState) -> tuple[int, ...]:
        """The GPU slots of `node` the request gets (exactly `request.gpus` of them)."""
        ...


@runtime_checkable
class Observer(Protocol):
    def observe(self, request: Request) -> None:
        """Learn from one arrived claim (before it is scheduled)."""
        ...


class Action(Protocol):
    NAME: str

    def run(
        self, scheduler: Scheduler, request: Request, cluster: Cluster
    ) -> tuple[Allocation, list[int]] | None:
        """A second pass for a request no node fits: its allocation and the nodes changed, or None."""
        ...


@dataclass(frozen=True)
class PluginContext:
    """What a plugin factory may use: the offline target workload (simulator only) and a seed."""

    workload: TargetWorkload | None = None
    seed: int = 0


Plugin = FilterPlugin | ScorePlugin | GpuPicker
Factory = Callable[[Mapping[str, Any], PluginContext], Any]


@dataclass(frozen=True)
class Decision:
    """Where a request goes (node index and GPU slots) or why it cannot go anywhere."""

    status: Status
    node: int = -1
    gpus: tuple[int, ...] = ()
    candidates: int = 0


@dataclass(frozen=True)
class Ranking:
    """Every node's standing for one request: which pass the filters and their weighted score.

    `scores` is aligned with `nodes` (None when no score ran: one candidate, or no score plugin);
    `best` is the node `decide` takes, the first of the highest scores.
    """

    status: Status
    mask: NDArray[np.bool_] | None
    nodes: NDArray[np.intp]
    scores: NDArray[np.float64] | None
    cycle: CycleState = field(default_factory=dict, compare=False)
    request: Request | None = field(default=None, compare=False)  # as the slot filters restricted it

    @property
    def best(self) -> int:
        if self.scores is None:
            return int(self.nodes[0])
        return int(self.nodes[int(np.argmax(self.scores))])


@dataclass
class Scheduler:
    """One profile's plugins, run over a cluster one request at a time."""

    name: str
    filters: list[FilterPlugin]
    scores: list[tuple[ScorePlugin, float]]
    picker: GpuPicker
    observers: list[Observer] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    touched: list[int] = field(default_factory=list)  # nodes the last `schedule` changed
    slot_filters: list[SlotFilterPlugin] = field(default_factory=list)  # rules on single GPUs

    def rank(
        self, request: Request, cluster: Cluster, avoid: int | None = None, learn: bool = True
    ) -> Ranking:
        """Filter and score every node for `request` (never node `avoid`); the cluster is not changed.

        `learn=False` keeps online plugins from counting a claim twice (a move is not an arrival).
        """
        if learn:
            for observer in self.observers:
                observer.observe(request)
        cycle: CycleState = {}
        request, restricted = self._restrict(request, cluster, cycle)
        if not restricted.ok:
            return Ranking(restricted, None, np.empty(0, dtype=np.intp), None, cycle, request)
        mask: NDArray[np.bool_] | None = None
        for plugin in self.filters:
            result, status = plugin.filter(request, cluster, cycle)
            if avoid is not None and mask is None:
                result = result.copy()
                result[avoid] = False
            mask = result if mask is None else mask & result
            if not status.ok or not mask.any():
                if status.ok:
                    status = unschedulable(
                        f"no node passes {plugin.NAME} after the earlier filters", plugin.NAME
                    )
                return Ranking(status, mask, np.empty(0, dtype=np.intp), None, cycle, request)
        nodes = np.flatnonzero(mask) if mask is not None else np.arange(cluster.size)
        if nodes.size == 0:
            return Ranking(unschedulable("the cluster has no nodes"), mask, nodes, None, cycle, request)
        total: NDArray[np.float64] | None = None
        if nodes.size > 1 and self.scores:
            for scorer, weight in self.scores:
                part = scorer.score(request, cluster, nodes, cycle) * weight
                total = part if total is None else total + part
        return Ranking(SUCCESS, mask, nodes, total, cycle, request)

    def decide(
        self, request: Request, cluster: Cluster, avoid: int | None = None, learn: bool = True
    ) -> Decision:
        """Rank the nodes, take the best (ties to the lowest index) and pick its GPUs for `request`."""
        ranking = self.rank(request, cluster, avoid, learn)
        if not ranking.status.ok:
            return Decision(ranking.status)
        node = ranking.best
        restricted = ranking.request or request  # the picker sees only the GPUs the slot filters allow
        gpus = self.picker.pick(restricted, cluster, node, ranking.cycle) if request.gpus else ()
        return Decision(SUCCESS, node, gpus, int(ranking.nodes.size))

    def _restrict(self, request: Request, cluster: Cluster, cycle: CycleState) -> tuple[Request, Status]:
        """The request with the GPUs the slot filters rule out made impossible to fit, so every
        later filter, score and picker sees only the GPUs it may use."""
        allowed: NDArray[np.bool_] | None = None
        reasons: list[Status] = []
        for plugin in self.slot_filters:
            mask, status = plugin.filter_slots(request, cluster, allowed, cycle)
            if mask is None:
                continue
            before = slots_of(cluster, allowed)
            allowed = before & mask
            if (before & ~mask).any() and status.reason:
                reasons.append(status)
            if not (allowed.sum(axis=1) >= max(request.gpus, 1)).any():
                return request, _combined(reasons, plugin.NAME, request.gpus)
        if allowed is None:
            return request, SUCCESS
        milli, memory = _slot_demand(request, cluster)
        restricted = replace(
            request,
            slot_milli=np.where(allowed, milli, IMPOSSIBLE_DEMAND),
            slot_memory=np.where(allowed, memory, IMPOSSIBLE_DEMAND),
        )
        return restricted, SUCCESS

    def schedule(
        self, request: Request, cluster: Cluster, learn: bool = True
    ) -> tuple[Decision, Allocation | None]:
        """Decide and bind in one Statement (all GPUs of the claim or none); actions get a failed claim."""
        decision = self.decide(request, cluster, learn=learn)
        if not decision.status.ok:
            for action in self.actions:
                done = action.run(self, request, cluster)
                if done is not None:
                    allocation, self.touched = done
                    return Decision(SUCCESS, allocation.node, allocation.gpus), allocation
            self.touched = []
            return decision, None
        with Statement(cluster) as statement:
            allocation = statement.allocate(request, decision.node, decision.gpus)
        self.touched = [decision.node]
        return decision, allocation


def _slot_demand(request: Request, cluster: Cluster) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Per (node, slot) demand of one vGPU of the request: (milli-GPU, memory bytes)."""
    shape = cluster.gpu_free_milli.shape
    milli = request.slot_milli if request.slot_milli is not None else np.full(shape, request.gpu_milli)
    memory = (
        request.slot_memory if request.slot_memory is not None else np.full(shape, request.gpu_memory_bytes)
    )
    return milli.astype(np.int64), memory.astype(np.int64)


def slots_of(cluster: Cluster, allowed: NDArray[np.bool_] | None) -> NDArray[np.bool_]:
    """The GPU slots still allowed (None: every slot that holds a GPU)."""
    present: NDArray[np.bool_] = cluster.gpu_total_milli > 0
    return present if allowed is None else allowed & present


def _combined(reasons: list[Status], last: str, gpus: int) -> Status:
    """One Status for slot filters that together leave too few GPUs: unresolvable only when every
    reason is."""
    if not reasons:
        return unschedulable(f"no GPU passes {last} after the earlier rules", last)
    code = (
        Code.UNSCHEDULABLE_AND_UNRESOLVABLE
        if all(not s.ok and s.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE for s in reasons)
        else Code.UNSCHEDULABLE
    )
    text = "; ".join(s.reason for s in reasons)
    prefix = "no GPU can take it" if gpus <= 1 else f"no node has {gpus} GPUs that can take it"
    return Status(code, f"{prefix}: {text}", ",".join(s.plugin for s in reasons))
