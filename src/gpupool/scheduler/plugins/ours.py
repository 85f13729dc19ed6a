"""`ours`: FGD's greedy step over a better fragmentation measure, learned online.

* the target workload is a histogram of the claims that have arrived (nothing read in advance);
* the measure blends FGD's F_n(M) with a *capacity* fragmentation (the idle milli-GPU left over if
  the node were filled with tasks of each shape: per-GPU slivers after packing, CPU that runs out
  before the GPUs), see `ResolvedWorkload.capacity_frag`;
* plus a *leftover* term: per GPU, the milli that no combination of the arrived share sizes can
  fill (free minus the largest sum of workload GPU sizes that fits), weighted by `leftover`; it
  steers shares towards complementary partners (650 + 320, 810 + 160) and away from leftovers
  that nothing fills, see `leftover_waste`;
* the leftover term is *crowding-aware*: every `crowd_every` arrivals it reads the cluster's open
  slivers and, per share size, the chance that a sliver it fits tightly is ever filled (the tasks of
  that size expected over the next `crowding` arrivals / the slivers waiting for them, capped at 1);
  a fill by a size with chance q counts only q of it, see `fill_chances`. With a glut of 190-milli
  slivers beside 810-milli tasks and few 160-milli tasks, a fresh 190 or 210 sliver counts as dead;
* points are int(100 * sigmoid(delta / 1000)) as in FGD; ties go to the lowest node name
  (optionally a packing tie-break); inside the node the tightest of the best GPUs is taken.

docs/scheduler.md has the measurements.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.frag import ResolvedWorkload, TargetWorkload
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.plugins.common import (
    MAX_SPEC_CPU_MILLI,
    MAX_SPEC_GPU_MILLI,
    gpu_left_milli,
)
from gpupool.scheduler.plugins.fgd import FgdScore, after_placing, points
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
        "weighting": str(args.get("weighting", "count")),
        "no_access": bool(args.get("no_access", True)),
        "reserve": float(args.get("reserve", 0.0)),
    }


def _share_sizes(resolved: ResolvedWorkload) -> dict[int, float]:
    """Per-GPU size (whole GPUs count as 1000) -> its probability in the workload."""
    wl = resolved.workload
    sizes: dict[int, float] = {}
    for milli, gpus, prob in zip(wl.gpu_milli.tolist(), wl.gpus.tolist(), wl.probs.tolist(), strict=True):
        if gpus >= 1 and milli > 0:
            size = min(milli, MILLI_PER_GPU)
            sizes[size] = sizes.get(size, 0.0) + prob
    return sizes


def leftover_waste(
    resolved: ResolvedWorkload, fill: Mapping[int, float] | None = None
) -> NDArray[np.float64]:
    """Per free milli r = 0..1000: the milli of r that arrived sizes leave unfilled.

    Without `fill`: r minus the largest sum of the workload's per-GPU sizes <= r (sizes may repeat;
    whole GPUs count as 1000): 190 milli beside an 810 task wastes 30 when 160-milli tasks arrive,
    130 milli wastes 130 when nothing that small arrives. With `fill` (size -> chance 0..1 that a
    task of that size comes for the sliver, 1 when absent), using size s costs s x (1 - chance): the
    cheapest fill by dynamic programming, so a leftover only unlikely sizes complete counts as waste.
    """
    penalty = [(size, size * (1.0 - (fill or {}).get(size, 1.0))) for size in _share_sizes(resolved)]
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
        weighting: str = "count",
        no_access: bool = True,
        reserve: float = 0.0,
    ) -> None:
        super().__init__(model)
        self.weighting = weighting
        self.no_access = no_access
        self.reserve = reserve
        self._weighted: dict[str, tuple[ResolvedWorkload, ResolvedWorkload]] = {}
        self._reserve_cache: tuple[ResolvedWorkload, NDArray[np.float64]] | None = None
        self._pressure: NDArray[np.float64] | None = None
        self._allowed_models: NDArray[np.bool_] = np.zeros(0, dtype=np.bool_)
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
        self._waste: tuple[ResolvedWorkload, NDArray[np.float64]] | None = None

    def node_measure(
        self,
        resolved: ResolvedWorkload,
        free: NDArray[np.int64],
        cpu: NDArray[np.int64],
        model: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        """The blended fragmentation plus `leftover` x the unfillable milli of each GPU (milli-GPU)."""
        value = self._blend(resolved, free, cpu, model)
        if not self.leftover:
            return value
        if self._waste is None or self._waste[0] is not resolved:
            fill = self._crowd[1] if self._crowd is not None else None
            self._waste = (resolved, leftover_waste(resolved, fill))
        waste = self._waste[1][np.clip(free, 0, MILLI_PER_GPU)].sum(axis=1)
        result: NDArray[np.float64] = value + self.leftover * waste
        return result

    def _reweighted(self, resolved: ResolvedWorkload, mode: str) -> ResolvedWorkload:
        """The workload with shapes weighted by count (as arrived) or by GPU demand (count x GPUs
        x milli per GPU; shapes without GPU drop out)."""
        if mode == "count":
            return resolved
        cached = self._weighted.get(mode)
        if cached is not None and cached[0] is resolved:
            return cached[1]
        wl = resolved.workload
        demand = wl.probs * wl.gpus * wl.gpu_milli
        if demand.sum() <= 0:
            return resolved
        probs = demand / demand.sum()
        if mode == "mixed":
            probs = 0.5 * probs + 0.5 * wl.probs
        weighted = ResolvedWorkload(TargetWorkload(wl.shapes, probs), resolved.allowed)
        self._weighted[mode] = (resolved, weighted)
        return weighted

    def _blend(
        self,
        resolved: ResolvedWorkload,
        free: NDArray[np.int64],
        cpu: NDArray[np.int64],
        model: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        if self.weighting == "count" and self.no_access:
            return resolved.measure(self.measure, free, cpu, model)
        weight = 1.0 if self.measure == "capacity" else 0.0
        if self.measure.startswith("blend"):
            weight = float(self.measure.removeprefix("blend") or 0.5)
        fgd_mode, capacity_mode = {
            "count": ("count", "count"),
            "demand": ("demand", "demand"),
            "capacity-demand": ("count", "demand"),
            "mixed": ("mixed", "mixed"),
            "capacity-mixed": ("count", "mixed"),
        }[self.weighting]
        value: NDArray[np.float64] = np.zeros(free.shape[0])
        if weight > 0.0:
            capacity = self._reweighted(resolved, capacity_mode)
            value = value + weight * capacity.capacity_frag(free, cpu, model, self.no_access)
        if weight < 1.0:
            fgd = self._reweighted(resolved, fgd_mode)
            value = value + (1.0 - weight) * fgd.frag(free, cpu, model, self.no_access)
        return value

    def pressure(self, resolved: ResolvedWorkload, cluster: Cluster) -> NDArray[np.float64]:
        """Per model id: min(1, the share of its GPUs that constrained arrived demand will want once
        arrivals reach the cluster's capacity). Constrained demand is split over its allowed models
        in proportion to their GPUs; 0 when nothing arrived is constrained."""
        if self._reserve_cache is not None and self._reserve_cache[0] is resolved:
            return self._reserve_cache[1]
        wl = resolved.workload
        capacity = np.bincount(
            cluster.model_id, weights=cluster.gpu_total_milli.sum(axis=1), minlength=len(cluster.models)
        )
        present = capacity > 0
        allowed = resolved.allowed & present[None, :]
        constrained = ~allowed[:, present].all(axis=1)
        demand = wl.probs * wl.gpus * wl.gpu_milli
        total = demand.sum()
        wanted = np.zeros(len(cluster.models))
        for index in np.flatnonzero(constrained & (demand > 0)):
            share = allowed[index] * capacity
            if share.sum() > 0:
                wanted += demand[index] / total * share / share.sum()
        ratio = np.divide(wanted, capacity / capacity.sum(), out=np.zeros_like(wanted), where=present)
        result: NDArray[np.float64] = np.minimum(1.0, ratio)
        self._reserve_cache = (resolved, result)
        return result

    def option_points(
        self,
        request: Request,
        resolved: ResolvedWorkload,
        free: NDArray[np.int64],
        cpu: NDArray[np.int64],
        model: NDArray[np.int64],
    ) -> NDArray[np.float64]:
        if not self.reserve or self._pressure is None or request.total_gpu_milli == 0:
            return super().option_points(request, resolved, free, cpu, model)
        before = self.node_measure(resolved, free, cpu, model)
        options, valid = after_placing(request, free)
        batch, count, slots = options.shape
        after = self.node_measure(
            resolved,
            options.reshape(batch * count, slots),
            np.repeat(cpu - request.cpu_milli, count),
            np.repeat(model, count),
        ).reshape(batch, count)
        pressure = self._pressure
        floor = pressure[self._allowed_models].min() if self._allowed_models.any() else 0.0
        cost = self.reserve * (pressure[model] - floor) * request.total_gpu_milli
        return np.where(valid, points(before[:, None], after + cost[:, None], self.resolution), -np.inf)

    def _points(self, request: Request, cluster: Cluster, nodes: NDArray[np.intp]) -> NDArray[np.float64]:
        self._prepare(request, cluster)
        return super()._points(request, cluster, nodes)

    def pick(self, request: Request, cluster: Cluster, node: int, cycle: CycleState) -> tuple[int, ...]:
        self._prepare(request, cluster)
        return super().pick(request, cluster, node, cycle)

    def _prepare(self, request: Request, cluster: Cluster) -> None:
        resolved = self.model.resolved(cluster)
        if not self.reserve or resolved is None:
            self._pressure = None
            return
        self._pressure = self.pressure(resolved, cluster)
        self._allowed_models = cluster.model_mask(request) & (
            np.bincount(cluster.model_id, weights=cluster.gpu_count, minlength=len(cluster.models)) > 0
        )

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
                waste = leftover_waste(resolved, fill)
                self._crowd = (self._arrivals, fill)
                current = self._waste
                # Keep the cached points while no leftover's value moved by `crowd_tolerance` milli
                # or more: dropping every node state's points costs a slow decision per shape.
                if (
                    current is None
                    or current[0] is not resolved
                    or np.abs(current[1] - waste).max() >= self.crowd_tolerance
                ):
                    self._waste, self._epoch = (resolved, waste), self._epoch + 1
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
