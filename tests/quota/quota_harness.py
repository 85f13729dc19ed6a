"""A real pool in-process (SQLite store, simulated devices, the configured placer) driven by
declarative steps, for quota, fair-share and preemption scenarios."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpupool.devices import SimulatedBackend
from gpupool.model import Claim, ClaimSpec, ClaimState, Event, Tenant
from gpupool.model.quota import QuotaUpdate
from gpupool.pool import PoolService
from gpupool.scheduler import make_placer
from gpupool.store import Store
from gpupool.store.quotas import QuotaRecords


@dataclass
class Scenario:
    pool: PoolService
    claims: dict[str, str] = field(default_factory=dict)  # label -> claim id

    @classmethod
    def start(
        cls, tmp_path: Path, spec: str = "1x4xH100-80GB", grace_s: float = 30.0, **quotas: tuple[str, str]
    ) -> Scenario:
        """A pool of `spec` with a preemption grace of `grace_s` seconds; keyword quotas map tenant
        names (underscores for dashes) to (guarantee, limit) amounts such as ("2gpu", "4gpu")."""
        store = Store(tmp_path / "pool.db")
        pool = PoolService(store, SimulatedBackend(spec), make_placer(), preempt_grace_s=grace_s)
        pool.start()
        for key, (guarantee, limit) in quotas.items():
            name = key.replace("_", "-")
            store.create_tenant(name, f"hash-{name}")
            QuotaRecords(store).set_quota(
                QuotaUpdate(guarantee=guarantee, limit=limit).to_quota(name), "admin"
            )
        return cls(pool)

    def claim(self, label: str, tenant: str, **spec: Any) -> Claim:
        claim = self.pool.create_claim(Tenant(name=tenant), ClaimSpec(**spec))
        self.claims[label] = claim.id
        return claim

    def release(self, label: str) -> None:
        self.pool.release(Tenant(name="admin"), self.claims[label])

    def expire(self) -> None:
        """Let every grace period run out: the pool's pass ends the victims and binds who waits."""
        self.pool.end_overdue_preemptions(time.time() + 3600)
        self.pool.schedule()

    def preempting(self) -> set[str]:
        return {label for label in self.claims if self.get(label).preempting}

    def get(self, label: str) -> Claim:
        return self.pool.store.get_claim(self.claims[label])

    def states(self) -> dict[str, str]:
        return {label: self.get(label).state.value for label in self.claims}

    def position(self, label: str) -> int | None:
        return self.pool.queue_position(self.get(label))

    def events(self, label: str) -> list[Event]:
        return self.pool.store.list_events(claim_id=self.claims[label])

    def actions(self, label: str) -> list[str]:
        return [e.action for e in self.events(label)]

    def close(self) -> None:
        self.pool.store.close()


BOUND = ClaimState.BOUND.value
PENDING = ClaimState.PENDING.value
PREEMPTED = ClaimState.PREEMPTED.value
RELEASED = ClaimState.RELEASED.value
