"""`claim_json` writes exactly what `ClaimPublic.model_dump_json()` writes, for claims in every state
and with awkward values (ints where the wire has floats, non-ASCII and control characters)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.api.convert import claim_fields, claim_json, claim_public
from gpupool.devices import SimulatedBackend
from gpupool.model import Binding, Claim, ClaimSpec, ClaimState, GiB, Tenant
from gpupool.model.wire import ClaimPublic
from gpupool.pool import PoolService
from gpupool.scheduler import make_placer
from gpupool.store import Store


def expected(claim: Claim, position: int | None = None) -> bytes:
    return claim_public(claim, position).model_dump_json().encode()


def test_claim_fields_follow_the_wire_schema() -> None:
    claim = Claim(id="c-1", tenant="t", spec=ClaimSpec(), state=ClaimState.PENDING)
    assert list(claim_fields(claim)) == list(ClaimPublic.model_fields)


def test_claims_from_a_live_pool(tmp_path: Path) -> None:
    pool = PoolService(Store(tmp_path / "pool.db"), SimulatedBackend("1x2xH100-80GB"), make_placer())
    pool.start()
    team = Tenant("team-a")
    claims = [
        pool.create_claim(team, ClaimSpec(memory_bytes=10 * GiB, compute_percent=25, labels={"job": "é✓"})),
        pool.create_claim(team, ClaimSpec(gpus=2)),  # pending: the whole GPUs are partly taken
        pool.create_claim(team, ClaimSpec(gpus=1, priority=5, preemptible=True)),
    ]
    claims.append(pool.release(team, claims[0].id))
    seen = set()
    for claim in claims:
        seen.add(claim.state)
        for position in (None, 3):
            assert claim_json(claim, position) == expected(claim, position)
    assert {ClaimState.BOUND, ClaimState.PENDING, ClaimState.RELEASED} <= seen


@pytest.mark.parametrize(
    "claim",
    [
        Claim(
            id="c-2",
            tenant='ünï\n\t"\\/\x01\u2028',
            spec=ClaimSpec(gpus=2, memory_bytes=1, compute_percent=100, model="H100*", labels={"k\x00": "v"}),
            state=ClaimState.BOUND,
            reason="quota: over",
            bindings=(
                Binding("GPU-a", "n1", 5 * GiB, 3, device_index=1),
                Binding("GPU-b", "n1", 5 * GiB, 3, device_index=2, whole_device=True, missing=True),
            ),
            created_at=0,  # ints where the wire says float
            updated_at=1_700_000_000,
            bound_at=1e16,
            preempt_deadline=1.5e-7,
        ),
        Claim(
            id="c-3",
            tenant="t",
            spec=ClaimSpec(mig="1g.10gb"),
            state=ClaimState.PENDING,
            reason="quota: team-a is at its limit",
            created_at=1764623456.123456,
            updated_at=1764623456.9999999,
            ended_at=2.0,
        ),
        Claim(id="c-4", tenant="t", spec=ClaimSpec(), state=ClaimState.LOST, preempt_deadline=3.0),
    ],
)
def test_awkward_claims(claim: Claim) -> None:
    assert claim_json(claim, 1) == expected(claim, 1)
    assert json.loads(claim_json(claim)) == json.loads(expected(claim))
