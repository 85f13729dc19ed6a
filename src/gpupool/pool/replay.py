"""Replay a stream of claims with arrival and holding times through the live pool, on a simulated clock.

The pool service is the one users run: claims go through `create_claim` (bind now or queue), the
queue pass after every release binds what fits, in queue order, through the configured placer.
Only the clock is simulated: arrivals and departures are processed in time order, a claim holds its
devices for its holding time from the moment it is bound, and the pool's own audit trail
(`claim.bound` events) says when that was. No quotas are set, so nothing is ever preempted.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gpupool.model import ClaimSpec, Device, DeviceTelemetry, Tenant
from gpupool.pool.service import PoolService
from gpupool.scheduler.live import FrameworkPlacer
from gpupool.store import Store

REPLAY_TENANT = "replay"


@dataclass(frozen=True)
class ReplayClaim:
    """One claim of the stream: when it arrives and how long it runs once bound (seconds)."""

    arrival_s: float
    hold_s: float
    spec: ClaimSpec


class StaticBackend:
    """A device backend whose devices never change and report no telemetry (replays, benchmarks)."""

    name = "static"

    def __init__(self, devices: Sequence[Device]) -> None:
        self._devices = sorted(devices, key=lambda d: (d.node, d.index))

    def devices(self) -> list[Device]:
        return list(self._devices)

    def telemetry(self) -> list[DeviceTelemetry]:
        return []

    def note_allocations(self, allocations: Mapping[str, tuple[int, int]]) -> None:
        """Static devices do not react to what is bound."""

    def close(self) -> None:
        """Nothing to release."""


@dataclass
class ReplayResult:
    """Per sample time: GPU allocation rate (% of compute), claims waiting, and the queueing delays of
    the claims bound since the previous sample; plus every claim's delay and the decision times."""

    policy: str
    times_s: NDArray[np.float64]
    allocation_pct: NDArray[np.float64]
    waiting: NDArray[np.int64]
    delay_p50_s: NDArray[np.float64]
    delay_p99_s: NDArray[np.float64]
    delays_s: NDArray[np.float64]  # per bound claim, in arrival order of the bound ones
    never_bound: int  # still waiting at the end
    decision_ms: NDArray[np.float64]
    wall_s: float
    claims: int = 0
    placements: int = field(default=0)


class _Timer:
    """Pool observer that records the wall time of every placement decision."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_decision(self, seconds: float, placed: bool) -> None:
        self.seconds.append(seconds)

    def on_bind_failure(self, reason: str) -> None:
        """Not expected in one process; nothing to record."""

    def on_preemption(self, tenant: str, count: int) -> None:
        """No quotas in a replay: never called."""


def replay(
    claims: Sequence[ReplayClaim],
    devices: Sequence[Device],
    policy: str,
    db_path: Path,
    samples: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Run the stream through a fresh pool (store at `db_path`) with `policy`; see the module doc."""
    started = time.perf_counter()
    store = Store(db_path)
    store.create_tenant(REPLAY_TENANT, token_hash=f"replay-{policy}-{time.time_ns()}")
    tenant = Tenant(REPLAY_TENANT)
    # A trace's claims that no node could hold wait (and are counted so) instead of being refused.
    pool = PoolService(store, StaticBackend(devices), FrameworkPlacer(policy), fixed_inventory=False)
    timer = _Timer()
    pool.observer = timer
    pool.start()
    capacity = 100.0 * len(devices)
    order = sorted(range(len(claims)), key=lambda i: claims[i].arrival_s)
    end = max((c.arrival_s for c in claims), default=0.0)
    sample_at = np.linspace(0.0, end, samples + 1)[1:]
    claim_of: dict[str, int] = {}
    arrived_at: dict[str, float] = {}
    delays: dict[str, float] = {}
    departures: list[tuple[float, str]] = []
    last_event = 0
    window: list[float] = []
    rows: list[tuple[float, float, int, float, float]] = []

    def collect(now: float) -> None:
        """Read the pool's audit trail for claims bound since the last look; schedule their ends."""
        nonlocal last_event
        while True:
            events = store.list_events(tenant=None, after_id=last_event, limit=1000)
            for event in events:
                last_event = event.id
                if event.action == "claim.bound" and event.claim_id in arrived_at:
                    claim_id = event.claim_id
                    delays[claim_id] = now - arrived_at[claim_id]
                    window.append(delays[claim_id])
                    heapq.heappush(departures, (now + claims[claim_of[claim_id]].hold_s, claim_id))
            if len(events) < 1000:
                return

    def sample(now: float) -> None:
        allocated = sum(compute for _, compute in store.device_allocations().values())
        waiting = len(arrived_at) - len(delays)
        p50 = float(np.percentile(window, 50)) if window else 0.0
        p99 = float(np.percentile(window, 99)) if window else 0.0
        rows.append((now, 100.0 * allocated / capacity, waiting, p50, p99))
        window.clear()

    def depart_until(limit: float) -> None:
        while departures and departures[0][0] <= limit:
            now, claim_id = heapq.heappop(departures)
            while next_sample[0] < len(sample_at) and sample_at[next_sample[0]] < now:
                sample(float(sample_at[next_sample[0]]))
                next_sample[0] += 1
            pool.release(tenant, claim_id, reason="replay: holding time over")
            collect(now)

    next_sample = [0]
    for done, index in enumerate(order, start=1):
        claim = claims[index]
        depart_until(claim.arrival_s)
        while next_sample[0] < len(sample_at) and sample_at[next_sample[0]] < claim.arrival_s:
            sample(float(sample_at[next_sample[0]]))
            next_sample[0] += 1
        created = pool.create_claim(tenant, claim.spec)
        claim_of[created.id] = index
        arrived_at[created.id] = claim.arrival_s
        collect(claim.arrival_s)
        if progress is not None:
            progress(done, len(order))
    depart_until(end)
    while next_sample[0] < len(sample_at):
        sample(float(sample_at[next_sample[0]]))
        next_sample[0] += 1
    store.close()
    columns: list[tuple[float, ...]] = list(zip(*rows, strict=True)) if rows else [()] * 5
    bound_delays = [delays[c] for c in arrived_at if c in delays]
    return ReplayResult(
        policy=policy,
        times_s=np.asarray(columns[0], dtype=np.float64),
        allocation_pct=np.asarray(columns[1], dtype=np.float64),
        waiting=np.asarray(columns[2], dtype=np.int64),
        delay_p50_s=np.asarray(columns[3], dtype=np.float64),
        delay_p99_s=np.asarray(columns[4], dtype=np.float64),
        delays_s=np.asarray(bound_delays, dtype=np.float64),
        never_bound=len(arrived_at) - len(delays),
        decision_ms=np.asarray(timer.seconds, dtype=np.float64) * 1000.0,
        wall_s=time.perf_counter() - started,
        claims=len(claims),
        placements=len(timer.seconds),
    )
