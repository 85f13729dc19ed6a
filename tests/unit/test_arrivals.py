"""Online policies learn each claim once: queue retries and what-if placements are not arrivals."""

from __future__ import annotations

from pathlib import Path

from gpupool.devices import SimulatedBackend
from gpupool.model import ClaimSpec, ClaimState, Tenant
from gpupool.pool import PoolService
from gpupool.scheduler import FrameworkPlacer, make_placer
from gpupool.scheduler.request import Request
from gpupool.store import Store

GiB = 1024**3


class CountingObserver:
    def __init__(self) -> None:
        self.seen = 0

    def observe(self, request: Request) -> None:
        self.seen += 1


def test_pending_claims_retried_by_every_pass_are_counted_once(tmp_path: Path) -> None:
    placer = make_placer("default")
    assert isinstance(placer, FrameworkPlacer)
    spy = CountingObserver()
    placer.scheduler.observers.append(spy)
    pool = PoolService(Store(tmp_path / "pool.db"), SimulatedBackend("1x1xH100-80GB"), placer)
    pool.start()
    admin = Tenant("admin")
    holder = pool.create_claim(admin, ClaimSpec())
    waiting = pool.create_claim(admin, ClaimSpec(memory_bytes=10 * GiB))
    assert waiting.state == ClaimState.PENDING
    for _ in range(5):
        pool.schedule()
    assert spy.seen == 2, "two claims arrived; five passes retried one of them"
    pool.release(admin, holder.id)
    assert pool.store.get_claim(waiting.id).state == ClaimState.BOUND
    assert spy.seen == 2
