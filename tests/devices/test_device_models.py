"""The table of real GPU figures and the names NVML products map to."""

from __future__ import annotations

import pytest

from gpupool.devices import GPU_MODELS, canonical_model_name, known_model_names, lookup_model
from gpupool.errors import InvalidRequest

MiB = 1024**2

# name: (memory MiB as nvidia-smi shows it, SMs, MIG capable, NVLink on the typical board)
EXPECTED = {
    "H200-141GB": (143771, 132, True, True),
    "H100-80GB": (81559, 132, True, True),
    "A100-80GB": (81920, 108, True, True),
    "A100-40GB": (40960, 108, True, True),
    "L40S": (46068, 142, False, False),
    "L4": (23034, 58, False, False),
    "A10": (23028, 72, False, False),
    "T4": (15360, 40, False, False),
    "V100-32GB": (32768, 80, False, True),
    "V100-16GB": (16384, 80, False, True),
}


@pytest.mark.parametrize(("name", "expected"), EXPECTED.items(), ids=list(EXPECTED))
def test_model_figures(name: str, expected: tuple[int, int, bool, bool]) -> None:
    model = lookup_model(name)
    assert (model.memory_total_bytes // MiB, model.sm_count, model.mig_capable, model.nvlink) == expected
    assert model.memory_total_bytes % MiB == 0


def test_table_holds_exactly_the_known_models() -> None:
    assert set(known_model_names()) == set(EXPECTED)
    assert list(GPU_MODELS) == list(known_model_names())


@pytest.mark.parametrize(
    ("query", "expected"),
    [("h100-80gb", "H100-80GB"), ("  A100-40gb ", "A100-40GB"), ("l40s", "L40S"), ("t4", "T4")],
    ids=["lower", "padded-mixed", "l40s", "t4"],
)
def test_lookup_is_case_insensitive(query: str, expected: str) -> None:
    assert lookup_model(query).name == expected


@pytest.mark.parametrize(
    "query", ["B200", "H100", "", "H100-80GB-SXM"], ids=["unknown", "partial", "empty", "suffix"]
)
def test_unknown_model_lists_known_ones(query: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        lookup_model(query)
    message = info.value.message
    assert "unknown GPU model" in message
    assert all(name in message for name in EXPECTED)
    assert "\n" not in message


@pytest.mark.parametrize(
    ("product", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "H100-80GB"),
        ("NVIDIA A100-SXM4-40GB", "A100-40GB"),
        ("Tesla T4", "T4"),
        ("tesla v100-sxm2-16gb", "V100-16GB"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("Tesla P100-PCIE-16GB", "P100-PCIE-16GB"),
        ("Quadro RTX 6000", "Quadro RTX 6000"),
    ],
    ids=["h100", "a100-40", "t4", "case", "unknown-nvidia", "unknown-tesla", "no-prefix"],
)
def test_canonical_model_name(product: str, expected: str) -> None:
    assert canonical_model_name(product) == expected
