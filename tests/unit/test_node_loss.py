"""A node that dies takes its claims to `lost`; nothing else changes; waiting claims bind elsewhere."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gpupool.devices import SimulatedBackend
from gpupool.model import ClaimSpec, ClaimState, Device, DeviceTelemetry, Tenant
from gpupool.pool import PoolService
from gpupool.scheduler import make_placer
from gpupool.store import Store


class ShrinkingBackend:
    """A simulated pool from which whole nodes can be taken away, as a cluster loses machines."""

    name = "simulated"

    def __init__(self, spec: str) -> None:
        self.inner = SimulatedBackend(spec)
        self.dead: set[str] = set()

    def devices(self) -> list[Device]:
        return [d for d in self.inner.devices() if d.node not in self.dead]

    def telemetry(self) -> list[DeviceTelemetry]:
        return self.inner.telemetry()

    def note_allocations(self, allocations: Mapping[str, tuple[int, int]]) -> None:
        self.inner.note_allocations(allocations)

    def close(self) -> None:
        self.inner.close()


def test_node_loss_marks_only_its_claims_lost_and_reschedules(tmp_path: Path) -> None:
    backend = ShrinkingBackend("3x2xH100-80GB")
    pool = PoolService(Store(tmp_path / "pool.db"), backend, make_placer("firstfit"))
    pool.start()
    admin = Tenant("admin")
    on_node = {
        node: pool.create_claim(admin, ClaimSpec(gpus=2))
        for node in ("sim-node-0", "sim-node-1", "sim-node-2")
    }
    assert {c.bindings[0].node for c in on_node.values()} == set(on_node)
    waiting = pool.create_claim(admin, ClaimSpec(gpus=2))
    assert waiting.state == ClaimState.PENDING

    # Free node 2, then kill node 1: the waiting claim must go to node 2, not wait for node 1.
    pool.release(admin, on_node["sim-node-2"].id)
    assert pool.store.get_claim(waiting.id).bindings[0].node == "sim-node-2"
    backend.dead.add("sim-node-1")
    lost = pool.node_lost("sim-node-1", reason="ray node died")

    assert [c.id for c in lost] == [on_node["sim-node-1"].id]
    assert pool.store.get_claim(on_node["sim-node-1"].id).state == ClaimState.LOST
    assert pool.store.get_claim(on_node["sim-node-1"].id).reason == "ray node died"
    assert pool.store.get_claim(on_node["sim-node-0"].id).state == ClaimState.BOUND, "nothing else changes"
    assert len(pool.devices) == 4
    assert "sim-node-1" not in {d.node for d in pool.devices}
    actions = [e.action for e in pool.store.list_events()]
    assert "claim.lost" in actions and "node.lost" in actions

    # The node comes back: its devices return empty; the lost claim is not resurrected.
    backend.dead.clear()
    pool.refresh_devices()
    assert len(pool.devices) == 6
    allocations = pool.store.device_allocations()
    node1 = [d.uuid for d in pool.devices if d.node == "sim-node-1"]
    assert all(allocations[uuid] == (0, 0) for uuid in node1)
    assert pool.store.get_claim(on_node["sim-node-1"].id).state == ClaimState.LOST
