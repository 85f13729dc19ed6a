"""Sizes and percentages are parsed once, with messages that name the field."""

from __future__ import annotations

import pytest

from gpupool.errors import InvalidRequest
from gpupool.model import ClaimSpec, describe_size, format_size, parse_percent, parse_size

GiB = 1024**3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10GiB", 10 * GiB),
        ("512MiB", 512 * 1024**2),
        ("1.5G", 1_500_000_000),
        ("2gb", 2_000_000_000),
        ("10GB", 10_000_000_000),
        ("10gi", 10 * GiB),
        ("1024B", 1024),
        (" 3 GiB ", 3 * GiB),
        (4096, 4096),
        ("1TiB", 1024**4),
    ],
    ids=["gib", "mib", "decimal-g", "lower-gb", "decimal-gb", "gi", "bytes-unit", "spaces", "int", "tib"],
)
def test_parse_size_accepts(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "GiB",
        "-1GiB",
        "0",
        "0GiB",
        "ten",
        "10XB",
        "1e3",
        -5,
        0,
        1.5,
        True,
        float("nan"),
        10**30,
        "2000000TiB",
    ],
    ids=[
        "empty",
        "unit-only",
        "negative",
        "zero",
        "zero-gib",
        "word",
        "bad-unit",
        "exponent",
        "neg-int",
        "zero-int",
        "fraction",
        "bool",
        "nan",
        "huge-int",
        "huge-string",
    ],
)
def test_parse_size_rejects_with_field_name(value: object) -> None:
    with pytest.raises(InvalidRequest, match=r"^memory: "):
        parse_size(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "expected"), [(25, 25), ("25", 25), ("25%", 25), (100, 100), (1, 1)])
def test_parse_percent_accepts(value: str | int, expected: int) -> None:
    assert parse_percent(value) == expected


@pytest.mark.parametrize("value", [0, 101, -1, "abc", 2.5, True, "%"])
def test_parse_percent_rejects(value: object) -> None:
    with pytest.raises(InvalidRequest, match=r"^compute: "):
        parse_percent(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["10", "1024", " 7 ", "0.5"], ids=["ten", "kilo", "spaces", "fraction"])
def test_a_size_without_a_unit_is_refused_with_both_readings(text: str) -> None:
    number = text.strip()
    with pytest.raises(InvalidRequest) as caught:
        parse_size(text)
    assert caught.value.message == (
        f"memory: {number!r} has no unit: write {number}GiB (binary) or {number}GB (decimal)"
    )


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [
        (10 * GiB, "10GiB"),
        (1536 * 1024**2, "1.5GiB"),
        (512, "512B"),
        (3 * 1024**2, "3MiB"),
        (85_520_809_984, "79.6GiB"),
        (80 * GiB - 1, "80GiB"),
    ],
)
def test_format_size(num_bytes: int, text: str) -> None:
    assert format_size(num_bytes) == text


@pytest.mark.parametrize(
    ("num_bytes", "text"),
    [
        (10 * GiB, "10GiB (10.7GB)"),
        (10_000_000_000, "9.3GiB (10GB)"),
        (85_520_809_984, "79.6GiB (85.5GB)"),
        (512 * 1024**2, "512MiB (536.9MB)"),
    ],
)
def test_describe_size_shows_binary_and_decimal(num_bytes: int, text: str) -> None:
    assert describe_size(num_bytes) == text


@pytest.mark.parametrize(
    ("spec", "total", "expected"),
    [
        (ClaimSpec(), 80 * GiB, (80 * GiB, 100)),
        (ClaimSpec(memory_bytes=10 * GiB), 80 * GiB, (10 * GiB, 13)),
        (ClaimSpec(compute_percent=25), 80 * GiB, (20 * GiB, 25)),
        (ClaimSpec(memory_bytes=GiB, compute_percent=50), 80 * GiB, (GiB, 50)),
        (ClaimSpec(memory_bytes=1), 80 * GiB, (1, 1)),
    ],
    ids=["whole", "memory-only", "compute-only", "both", "tiny-memory-min-1pct"],
)
def test_demand_on_derives_the_missing_dimension(
    spec: ClaimSpec, total: int, expected: tuple[int, int]
) -> None:
    assert spec.demand_on(total) == expected


@pytest.mark.parametrize(
    "kwargs",
    [{"gpus": 0}, {"gpus": 65}, {"memory_bytes": 0}, {"compute_percent": 0}, {"compute_percent": 101}],
    ids=["no-gpus", "too-many-gpus", "zero-memory", "zero-compute", "compute-over-100"],
)
def test_claim_spec_refuses_nonsense(kwargs: dict[str, int]) -> None:
    with pytest.raises(InvalidRequest):
        ClaimSpec(**kwargs)  # type: ignore[arg-type]
