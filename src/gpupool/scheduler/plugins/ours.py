"""`ours`: FGD's greedy step over a better fragmentation measure, learned online.

* the target workload is a histogram of the claims that have arrived (nothing read in advance);
* the measure blends FGD's F_n(M) with a *capacity* fragmentation (the idle milli-GPU left over if
  the node were filled with tasks of each shape: per-GPU slivers after packing, CPU that runs out
  before the GPUs), see `ResolvedWorkload.capacity_frag`;
* plus a *leftover* term: per GPU, the milli that no combination of the arrived share sizes can
  fill (free minus the largest sum of workload GPU sizes that fits), weighted by `leftover`; it
  steers shares towards complementary partners (650 + 320, 810 + 160) and away from leftovers
  that nothing fills, see `leftover_waste`;
* the leftover term is *CPU-aware* (`leftover_cpu`): a size fills a GPU's free milli only on a node
  whose free CPU still holds one task of that size (its least CPU among the arrived shapes), so a
  half-used GPU beside exhausted CPU counts as waste, see `LeftoverTables`;
* the leftover term is *crowding-aware*: every `crowd_every` arrivals it reads the cluster's open
  slivers and, per share size, the chance that a sliver it fits tightly is ever filled (the tasks of
  that size expected over the next `crowding` arrivals / the slivers waiting for them, capped at 1);
  a fill by a size with chance q counts only q of it, see `fill_chances`. With a glut of 190-milli
  slivers beside 810-milli tasks and few 160-milli tasks, a fresh 190 or 210 sliver counts as dead;
* model constraints (`foreign_idle` off): a shape counts nothing on a node whose model it may not
  use. FGD counts that node's whole idle capacity as the shape's fragment, so filling *any* GPU of
  a model "reduces fragmentation" for every shape constrained elsewhere, and all claims drift to
  the models that many constrained shapes cannot use: the scarce ones those shapes' siblings need;
* *reserve* (`reserve` x cost): per model, the pressure of arrived constrained demand (the share
  of its GPUs the claims constrained to it will want once arrivals reach the cluster's capacity,
  capped at 1, see `ReserveState`); a move costs (its model's pressure - the least pressure among
  the claim's candidate models) x the capacity it takes from the constrained shapes that may run
  there (what they could fill before minus after, counted like the capacity fragmentation, so a
  GPU stranded by CPU or a sliver none of them fits costs nothing). The cost is expected displaced
  constrained demand in milli-GPU, FGD's unit, so its weight is 1. All of it is read from arrived
  claims and the cluster as it is;
* points are int(100 * sigmoid(delta / 1000)) as in FGD; ties go to the lowest node name
  (optionally a packing tie-break); inside the node the tightest of the best GPUs is taken.

docs/scheduler.md has the measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.frag import ResolvedWorkload, Shape, TargetWorkload
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.plugins.common import (
    MAX_SPEC_CPU_MILLI,
    MAX_SPEC_GPU_MILLI,
    gpu_left_milli,
)
from gpupool.scheduler.plugins.fgd import FgdScore
from gpupool.scheduler.plugins.fragmodel import FragModel
from gpupool.scheduler.request import MILLI_PER_GPU, Request

NAME = "ours"
TIEBREAKS = ("none", "bestfit", "gpu-left", "cpu-left", "fewest-free", "cpu-balance")


def options(args: Mapping[str, Any]) -> dict[str, Any]:
    """Typed arguments of the plugin from a profile's args."""
    tiebreak = str(args.get("tiebreak", "none"))
    if tiebreak not in TIEBREAKS:
        raise ValueError(f"ours: tiebreak must be one of {TIEBREAKS}, got {tiebreak!r}")
    return {
        "tiebreak": tiebreak,
        "resolution": float(args.get("resolution", 100)),
        "tight_gpu": bool(args.get("tight_gpu", True)),
        "measure": str(args.get("measure", "blend0.5")),
        "leftover": float(args.get("leftover", 0.0)),
        "crowding": float(args.get("crowding", 0.0)),
        "crowd_every": int(args.get("crowd_every", 256)),
        "crowd_tolerance": float(args.get("crowd_tolerance", 0.0)),
        "foreign_idle": bool(args.get("foreign_idle", True)),
        "reserve": float(args.get("reserve", 0.0)),
        "leftover_cpu": bool(args.get("leftover_cpu", False)),
    }


def _gpu_tasks(resolved: ResolvedWorkload) -> list[tuple[int, int, float]]:
    """(per-GPU size, CPU milli, probability) of each GPU shape; whole GPUs count as 1000."""
    wl = resolved.workload
    rows = zip(wl.gpu_milli.tolist(), wl.gpus.tolist(), wl.cpu_milli.tolist(), wl.probs.tolist(), strict=True)
    return [
        (min(milli, MILLI_PER_GPU), cpu, prob) for milli, gpus, cpu, prob in rows if gpus >= 1 and milli > 0
    ]


def _share_sizes(resolved: ResolvedWorkload) -> dict[int, float]:
    """Per-GPU size (whole GPUs count as 1000) -> its probability in the workload."""
    sizes: dict[int, float] = {}
    for size, _, prob in _gpu_tasks(resolved):
        sizes[size] = sizes.get(size, 0.0) + prob
    return sizes


def _size_cpu(resolved: ResolvedWorkload) -> dict[int, int]:
    """Per-GPU size (as `_share_sizes`) -> the least CPU milli of one task of that size."""
    least: dict[int, int] = {}
    for size, cpu, _ in _gpu_tasks(resolved):
        least[size] = min(least.get(size, cpu), cpu)
    return least


@dataclass(frozen=True)
class LeftoverTables:
    """`leftover_waste` per amount of free CPU on the node: a size can fill a GPU's free milli only
    where one task of it still finds its CPU. `tables[j]` allows the sizes whose least CPU is at most
    `thresholds[j - 1]` (`tables[0]`: none, so every free milli is waste)."""

    thresholds: NDArray[np.int64]
    tables: NDArray[np.float64]  # (len(thresholds) + 1, 1001)

    @classmethod
    def of(cls, resolved: ResolvedWorkload, fill: Mapping[int, float] | None = None) -> LeftoverTables:
        least = _size_cpu(resolved)
        thresholds = np.asarray(sorted(set(least.values())), dtype=np.int64)
        tables = [np.arange(MILLI_PER_GPU + 1, dtype=np.float64)]
        for limit in thresholds.tolist():
            allowed = {size for size, cpu in least.items() if cpu <= limit}
            tables.append(leftover_waste(resolved, fill, allowed))
        return cls(thresholds, np.asarray(tables))

    def waste(self, free: NDArray[np.int64], cpu: NDArray[np.int64]) -> NDArray[np.float64]:
        """Per node state: the unfillable milli of its GPUs given its free CPU."""
        row = np.searchsorted(self.thresholds, cpu, side="right")
        result: NDArray[np.float64] = self.tables[row[:, None], np.clip(free, 0, MILLI_PER_GPU)].sum(axis=1)
        return result


def leftover_waste(
    resolved: ResolvedWorkload,
    fill: Mapping[int, float] | None = None,
    sizes: set[int] | None = None,
) -> NDArray[np.float64]:
    """Per free milli r = 0..1000: the milli of r that arrived sizes leave unfilled.

    Without `fill`: r minus the largest sum of the workload's per-GPU sizes <= r (sizes may repeat;
    whole GPUs count as 1000): 190 milli beside an 810 task wastes 30 when 160-milli tasks arrive,
    130 milli wastes 130 when nothing that small arrives. With `fill` (size -> chance 0..1 that a
    task of that size comes for the sliver, 1 when absent), using size s costs s x (1 - chance): the
    cheapest fill by dynamic programming, so a leftover only unlikely sizes complete counts as waste.
    """
    penalty = [
        (size, size * (1.0 - (fill or {}).get(size, 1.0)))
        for size in _share_sizes(resolved)
        if sizes is None or size in sizes
    ]
    cost = [0.0] * (MILLI_PER_GPU + 1)
    for total in range(1, MILLI_PER_GPU + 1):
        cost[total] = min([float(total)] + [cost[total - s] + pen for s, pen in penalty if s <= total])
    return np.asarray(cost, dtype=np.float64)


def fill_chances(
    resolved: ResolvedWorkload, free_milli: NDArray[np.int64], horizon: float
) -> dict[int, float]:
    """Per share size s: the chance that an open sliver s fits tightly gets an s-task.

    Expected s-tasks over the next `horizon` arrivals (horizon x p_s) over the open slivers (GPUs
    with free milli in [s, the next larger share size)), capped at 1. Online: only the arrived-shape
    histogram and the cluster as it is now are read.
    """
    shares = {size: p for size, p in _share_sizes(resolved).items() if size < MILLI_PER_GPU}
    free = free_milli.ravel()
    free = free[(free > 0) & (free < MILLI_PER_GPU)]
    sizes = sorted(shares)
    chances: dict[int, float] = {}
    for index, size in enumerate(sizes):
        upper = sizes[index + 1] if index + 1 < len(sizes) else MILLI_PER_GPU
        waiting = int(((free >= size) & (free < upper)).sum())
        expected = horizon * shares[size]
        chances[size] = 1.0 if waiting <= expected else expected / waiting
    return chances


@dataclass(frozen=True)
class ReserveState:
    """What the arrived model-constrained claims need: per model id, the pressure (min(1, the share
    of its GPUs their demand will want once arrivals reach the cluster's capacity)), and the
    constrained shapes with per-model weights (each shape's demand split over its allowed models
    in proportion to their GPUs, normalised per model)."""

    pressure: NDArray[np.float64]
    shapes: ResolvedWorkload
    weights: NDArray[np.float64]  # (shapes, models)

    @classmethod
    def of(
        cls, resolved: ResolvedWorkload, cluster: Cluster, counts: Mapping[Shape, float] | None
    ) -> ReserveState | None:
        """From every arrived shape (`counts`; rare constrained shapes fall out of the typical
        ones) or else the typical shapes; None when nothing constrained has arrived."""
        capacity = np.bincount(
            cluster.model_id, weights=cluster.gpu_total_milli.sum(axis=1), minlength=len(cluster.models)
        )
        present = capacity > 0
        if counts is None:
            counts = dict(zip(resolved.workload.shapes, resolved.workload.probs.tolist(), strict=True))
        total = sum(weight * shape[1] * shape[2] for shape, weight in counts.items())
        chosen: list[Shape] = []
        demand: list[NDArray[np.float64]] = []
        for shape, weight in counts.items():
            if weight * shape[1] * shape[2] <= 0 or (shape[3] is None and shape[4] is None):
                continue
            allowed = cluster.model_mask(Request(models=shape[3], model_pattern=shape[4])) & present
            if allowed.any() and not allowed[present].all():
                chosen.append(shape)
                share = allowed * capacity
                demand.append(weight * shape[1] * shape[2] * share / share.sum())
        if not chosen or total <= 0:
            return None
        wanted = np.asarray(demand)  # (shapes, models)
        ratio = np.divide(
            wanted.sum(axis=0) / total,
            capacity / capacity.sum(),
            out=np.zeros(len(cluster.models)),
            where=present,
        )
        # what a shape can fill depends on its size only (the weights are 0 where it may not run):
        # merge the shapes that differ in their allowed models alone
        sizes = sorted({shape[:3] for shape in chosen})
        merged = np.zeros((len(sizes), len(cluster.models)))
        for shape, row in zip(chosen, wanted, strict=True):
            merged[sizes.index(shape[:3])] += row
        column = merged.sum(axis=0)
        weights = np.divide(merged, column[None, :], out=np.zeros_like(merged), where=column[None, :] > 0)
        workload = TargetWorkload(
            tuple((*size, None, None) for size in sizes), np.full(len(sizes), 1.0 / len(sizes))
        )
        return cls(np.minimum(1.0, ratio), ResolvedWorkload.of(workload, cluster), weights)

    def usable(
        self, free: NDArray[np.int64], cpu: NDArray[np.int64], model: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        """Per node state: the milli-GPU the constrained shapes allowed on its model could fill
        (weighted by their demand there)."""
        per_shape = self.shapes.usable(free, cpu, model)  # (B, shapes)
        result: NDArray[np.float64] = (per_shape * self.weights[:, model].T).sum(axis=1)
        return result


@dataclass
class Leftover:
    """The leftover tables of one target workload and one reading of the fill chances: the plain
    one (`leftover_waste`) and, made when first needed, the CPU-aware ones built from the same
    chances (so both always describe the same reading)."""

    resolved: ResolvedWorkload
    fill: Mapping[int, float] | None
    plain: NDArray[np.float64]
    _by_cpu: LeftoverTables | None = None

    @classmethod
    def of(cls, resolved: ResolvedWorkload, fill: Mapping[int, float] | None) -> Leftover:
        return cls(resolved, fill, leftover_waste(resolved, fill))

    def by_cpu(self) -> LeftoverTables:
        if self._by_cpu is None:
            self._by_cpu = LeftoverTables.of(self.resolved, self.fill)
        return self._by_cpu


class OursScore(FgdScore):
    """FGD points first; among nodes with equal points, the `tiebreak` preference (scaled into [0, 1))."""

    NAME = NAME

    def __init__(
        self,
        model: FragModel,
        tiebreak: str = "none",
        resolution: float = 100,
        tight_gpu: bool = True,
        measure: str = "blend0.5",
        leftover: float = 0.0,
        crowding: float = 0.0,
        crowd_every: int = 256,
        crowd_tolerance: float = 0.0,
        foreign_idle: bool = True,
        reserve: float = 0.0,
        leftover_cpu: bool = False,
    ) -> None:
        super().__init__(model)
        self.leftover_cpu = leftover_cpu
        self.foreign_idle = foreign_idle
        self.reserve = reserve
        self._reserve_cache: tuple[ResolvedWorkload, ReserveState | None] | None = None
        self._reserve: ReserveState | None = None  # of the decision being scored
        self._floor: float | None = None  # the least pressure among its candidates' models
        self.tiebreak = tiebreak
        self.resolution = resolution
        self.tight_gpu = tight_gpu
        self.measure = measure
        self.leftover = leftover
        self.crowding = crowding
        self.crowd_every = crowd_every
        self.crowd_tolerance = crowd_tolerance
        self._arrivals = 0
        self._crowd: tuple[int, dict[int, float]] | None = None  # (arrivals when taken, fill per size)
        self._seen_version, self._epoch = -1, 0
        self._waste: Leftover | None = None

    def node_measure(
        self,
        resolved: ResolvedWorkload,
        free: NDArray[np.int64],
        cpu: NDArray[np.int64],
        model: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        """The blended fragmentation (milli-GPU); the leftover term is `volatile_measure`."""
        return resolved.measure(self.measure, free, cpu, model, no_access=self.foreign_idle)

    def volatile_measure(
        self, resolved: ResolvedWorkload, free: NDArray[np.int64], cpu: NDArray[np.int64]
    ) -> NDArray[np.float64] | float:
        """`leftover` x the unfillable milli of each GPU (with `leftover_cpu`, given the node's free
        CPU): it changes with the crowding (cache_version), so the caches keep `node_measure` across
        its refreshes and recompute only this lookup."""
        if not self.leftover:
            return 0.0
        if self._waste is None or self._waste.resolved is not resolved:
            self._waste = Leftover.of(resolved, self._crowd[1] if self._crowd is not None else None)
        if self.leftover_cpu:
            cpu_aware: NDArray[np.float64] = self.leftover * self._waste.by_cpu().waste(free, cpu)
            return cpu_aware
        waste = self._waste.plain[np.clip(free, 0, MILLI_PER_GPU)].sum(axis=1)
        result: NDArray[np.float64] = self.leftover * waste
        return result

    def reserve_state(self, resolved: ResolvedWorkload, cluster: Cluster) -> ReserveState | None:
        """The reserve view of the arrived constraint mix, rebuilt with the target workload."""
        if self._reserve_cache is None or self._reserve_cache[0] is not resolved:
            online = self.model.online
            counts = online.counts if online is not None and online.counts else None
            self._reserve_cache = (resolved, ReserveState.of(resolved, cluster, counts))
        return self._reserve_cache[1]

    def option_cost(
        self,
        request: Request,
        resolved: ResolvedWorkload,
        before: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
        after: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]],
    ) -> NDArray[np.float64] | float:
        """`reserve` x (the model's pressure above the floor) x the capacity the move takes from
        constrained shapes that may run there (what they could still fill, before minus after)."""
        state = self._reserve
        if not self.reserve or state is None or self._floor is None:
            return 0.0
        model = before[2]
        excess = np.maximum(0.0, state.pressure[model] - self._floor)
        if not excess.any():
            return 0.0
        taken = state.usable(*before)[:, None] - state.usable(*after).reshape(model.size, -1)
        cost: NDArray[np.float64] = self.reserve * excess[:, None] * np.maximum(0.0, taken)
        return cost

    def cache_key(self, request: Request) -> Any:
        """Points depend on the reserve floor too (the least pressed model among the candidates)."""
        return (request.shape(), self._floor)

    def _points(self, request: Request, cluster: Cluster, nodes: NDArray[np.intp]) -> NDArray[np.float64]:
        resolved = self.model.resolved(cluster)
        self._reserve, self._floor = None, None
        if self.reserve and resolved is not None and request.total_gpu_milli and nodes.size:
            self._reserve = self.reserve_state(resolved, cluster)
            if self._reserve is not None:
                self._floor = float(self._reserve.pressure[cluster.model_id[nodes]].min())
        return super()._points(request, cluster, nodes)

    def pick(self, request: Request, cluster: Cluster, node: int, cycle: CycleState) -> tuple[int, ...]:
        """Inside one node every GPU is of the same model: the reserve cost only counts between nodes."""
        self._reserve, self._floor = None, None
        return super().pick(request, cluster, node, cycle)

    def observe(self, request: Request) -> None:
        super().observe(request)
        self._arrivals += 1

    def cache_version(self, cluster: Cluster) -> int:
        """Bumped on a new target workload and, with `crowding`, whenever the fill chances are
        re-read from the cluster (every `crowd_every` arrivals): cached points then go stale."""
        if self.model.version != self._seen_version:
            self._seen_version, self._epoch = self.model.version, self._epoch + 1
        if self.crowding > 0:
            resolved = self.model.resolved(cluster)
            taken = self._crowd[0] if self._crowd is not None else None
            if resolved is not None and (taken is None or self._arrivals - taken >= self.crowd_every):
                fill = fill_chances(resolved, cluster.gpu_free_milli, self.crowding)
                fresh = Leftover.of(resolved, fill)
                self._crowd = (self._arrivals, fill)
                current = self._waste
                # Keep the cached points while no leftover's value moved by `crowd_tolerance` milli
                # or more: dropping every node state's points costs a slow decision per shape.
                if (
                    current is None
                    or current.resolved is not resolved
                    or np.abs(current.plain - fresh.plain).max() >= self.crowd_tolerance
                ):
                    self._waste, self._epoch = fresh, self._epoch + 1
        return self._epoch

    def score(
        self, request: Request, cluster: Cluster, nodes: NDArray[np.intp], cycle: CycleState
    ) -> NDArray[np.float64]:
        primary = self._points(request, cluster, nodes)
        if self.tiebreak == "none":
            return primary
        secondary = self._secondary(request, cluster, nodes)
        low, high = secondary.min(), secondary.max()
        if high > low:
            primary = primary + 0.999 * (secondary - low) / (high - low)
        return primary

    def _secondary(self, request: Request, cluster: Cluster, nodes: NDArray[np.intp]) -> NDArray[np.float64]:
        """Higher is preferred."""
        gpu_left = (gpu_left_milli(cluster, nodes) - request.total_gpu_milli) / MAX_SPEC_GPU_MILLI
        cpu_left = (cluster.cpu_free_milli[nodes] - request.cpu_milli) / MAX_SPEC_CPU_MILLI
        if self.tiebreak == "bestfit":
            return -(gpu_left + cpu_left)
        if self.tiebreak == "gpu-left":
            return -gpu_left
        if self.tiebreak == "cpu-left":
            return -cpu_left
        if self.tiebreak == "fewest-free":
            free: NDArray[np.float64] = (cluster.gpu_free_milli[nodes] == MILLI_PER_GPU).sum(axis=1) * 1.0
            return -free
        # cpu-balance: keep CPU per free GPU close to the cluster's
        ratio = (cluster.cpu_free_milli[nodes] - request.cpu_milli) / np.maximum(
            gpu_left_milli(cluster, nodes) - request.total_gpu_milli, 1
        )
        target = cluster.cpu_free_milli.sum() / max(int(cluster.gpu_free_milli.sum()), 1)
        result: NDArray[np.float64] = -np.abs(np.log1p(ratio) - np.log1p(target))
        return result
