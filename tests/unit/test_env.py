"""The launch environment of a claim."""

from __future__ import annotations

from gpupool.isolation import launch_env
from gpupool.model import Binding, Claim, ClaimSpec, ClaimState

GiB = 1024**3


def _claim(*bindings: Binding, spec: ClaimSpec | None = None) -> Claim:
    return Claim(
        id="c-1", tenant="team-a", spec=spec or ClaimSpec(), state=ClaimState.BOUND, bindings=bindings
    )


def test_whole_gpus_are_isolated_by_visibility_only() -> None:
    env = launch_env(
        _claim(
            Binding("GPU-a", "n0", 80 * GiB, 100, device_index=0, whole_device=True),
            Binding("GPU-b", "n0", 80 * GiB, 100, device_index=1, whole_device=True),
            spec=ClaimSpec(gpus=2),
        )
    )
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-a,GPU-b"
    assert env["NVIDIA_VISIBLE_DEVICES"] == "GPU-a,GPU-b"
    assert "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE" not in env
    assert "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT" not in env


def test_fractions_get_mps_limits_per_visible_ordinal() -> None:
    env = launch_env(
        _claim(
            Binding("GPU-a", "n0", 10 * GiB, 25),
            Binding("GPU-b", "n0", 10 * GiB, 25),
            spec=ClaimSpec(gpus=2, memory_bytes=10 * GiB, compute_percent=25),
        )
    )
    assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
    assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=10240M,1=10240M"
    assert env["GPUPOOL_MEMORY_LIMIT_BYTES"] == f"{10 * GiB},{10 * GiB}"
    assert env["GPUPOOL_CLAIM_ID"] == "c-1"


def test_missing_devices_are_left_out_and_empty_claims_get_nothing() -> None:
    env = launch_env(_claim(Binding("GPU-a", "n0", GiB, 5), Binding("GPU-gone", "n0", GiB, 5, missing=True)))
    assert env["CUDA_VISIBLE_DEVICES"] == "GPU-a"
    assert launch_env(_claim()) == {}
