"""Which devices a pool judges and hands out: only its own nodes go missing, a device that comes
back clears `missing`, a GPU in MIG mode is never schedulable whole (both policies)."""

from __future__ import annotations

import pytest

from gpupool.devices import SimulatedBackend
from gpupool.errors import InvalidRequest
from gpupool.model import ClaimSpec, ClaimState, Tenant
from gpupool.pool import PoolService
from gpupool.scheduler import make_placer
from gpupool.store import Store

ADMIN = Tenant("admin")


def test_a_replica_never_marks_another_nodes_devices_gone(db_url: str) -> None:
    first = PoolService(Store(db_url), SimulatedBackend("2x2xH100-80GB"), make_placer())
    first.start()
    claims = [first.create_claim(ADMIN, ClaimSpec(gpus=2)) for _ in range(2)]
    far = next(c for c in claims if c.bindings[0].node == "sim-node-1")

    second = PoolService(Store(db_url), SimulatedBackend("1x2xH100-80GB"), make_placer())
    assert second.start() == [], "sim-node-1 is not the second replica's to judge"
    assert not any(b.missing for b in second.store.get_claim(far.id).bindings)
    assert len(second.store.device_allocations()) == 4, "every device is still present"


def test_missing_clears_when_the_device_comes_back(db_url: str) -> None:
    pool = PoolService(Store(db_url), SimulatedBackend("1x2xH100-80GB"), make_placer())
    pool.start()
    claim = pool.create_claim(ADMIN, ClaimSpec(gpus=2))
    shrunk = PoolService(Store(db_url), SimulatedBackend("1x1xH100-80GB"), make_placer())
    assert [c.id for c in shrunk.start()] == [claim.id]
    back = PoolService(Store(db_url), SimulatedBackend("1x2xH100-80GB"), make_placer())
    assert back.start() == []
    restored = back.store.get_claim(claim.id)
    assert restored.state == ClaimState.BOUND and not any(b.missing for b in restored.bindings)
    actions = [e.action for e in back.store.list_events(claim_id=claim.id)]
    assert actions[-2:] == ["binding.missing", "binding.restored"]


def test_a_lost_node_of_this_pool_goes_missing(db_url: str) -> None:
    pool = PoolService(Store(db_url), SimulatedBackend("2x1xH100-80GB"), make_placer())
    pool.start()
    claims = [pool.create_claim(ADMIN, ClaimSpec(gpus=1)) for _ in range(2)]
    # The backend now shows sim-node-0 only: sim-node-1 is a node this pool showed before.
    pool.backend = SimulatedBackend("1x1xH100-80GB")
    affected = pool.refresh_devices()
    assert [c.id for c in affected] == [c.id for c in claims if c.bindings[0].node == "sim-node-1"]


@pytest.mark.parametrize("policy", ["default", "firstfit"])
def test_mig_parent_is_never_whole_and_instances_go_by_profile(tmp_path: object, policy: str) -> None:
    pool = PoolService(
        Store(f"{tmp_path}/pool.db"), SimulatedBackend("1x1xH100-80GB:3x1g.10gb+1x3g.40gb,1x1xH100-80GB"),
        make_placer(policy),
    )  # fmt: skip
    pool.start()
    assert len(pool.devices) == 6 and len(pool.schedulable_devices) == 5
    whole = [pool.create_claim(ADMIN, ClaimSpec(gpus=1, model="H100*")) for _ in range(2)]
    assert [c.state for c in whole] == [ClaimState.BOUND, ClaimState.PENDING]
    assert whole[0].bindings[0].node == "sim-node-1", "the only whole H100 is the one without MIG"
    assert "--mig" in pool.store.get_claim(whole[1].id).reason
    small = [pool.create_claim(ADMIN, ClaimSpec(mig="1g.10gb", model="H100*")) for _ in range(4)]
    assert [c.state for c in small] == [ClaimState.BOUND] * 3 + [ClaimState.PENDING]
    big = pool.create_claim(ADMIN, ClaimSpec(mig="3G.40GB"))
    assert big.state == ClaimState.BOUND and big.spec.mig == "3g.40gb"
    with pytest.raises(InvalidRequest, match="could never bind"):  # no A100 parent in this pool
        pool.create_claim(ADMIN, ClaimSpec(mig="1g.10gb", model="A100*"))
    fraction = pool.create_claim(ADMIN, ClaimSpec(memory_bytes=1024**3))
    assert fraction.state == ClaimState.PENDING, "fractions never land on an instance or a MIG parent"


def test_a_mig_instance_counts_its_slices_against_the_quota(tmp_path: object) -> None:
    from gpupool.pool.usage import tenant_usage

    pool = PoolService(Store(f"{tmp_path}/pool.db"), SimulatedBackend("1x1xH100-80GB:3x1g.10gb+1x3g.40gb"),
                       make_placer())  # fmt: skip
    pool.start()
    held = [pool.create_claim(ADMIN, ClaimSpec(mig=profile)) for profile in ("1g.10gb", "3g.40gb")]
    assert all(c.state == ClaimState.BOUND for c in held)
    usage = tenant_usage(pool.store.list_claims(), pool.schedulable_devices)["admin"]
    assert usage.allocated_gpus == pytest.approx(4 / 7), "1/7 + 3/7 of the card, not 2 GPUs"
