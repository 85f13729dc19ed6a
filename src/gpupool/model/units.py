"""Sizes and percentages, parsed once here so every layer speaks bytes and integer percent."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from gpupool.errors import InvalidRequest

_BINARY_UNITS: dict[str, int] = {
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_DECIMAL_UNITS: dict[str, int] = {
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
}
_UNITS: dict[str, int] = {"b": 1, **_BINARY_UNITS, **_DECIMAL_UNITS}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")

SIZE_RULE = (
    "a size needs a unit: GiB/MiB/KiB/TiB (or Gi, Mi, ...) are binary, 1GiB = 1024^3 bytes; "
    "GB/MB/kB/TB (or G, M, k, T) are decimal, 1GB = 10^9 bytes; case does not matter"
)
"""The one rule for sizes typed by people (documented in the README). A bare integer in a JSON body
or the SDK is a byte count; a bare number in a string is refused, since nobody means 10 bytes."""

GiB = 1024**3
MiB = 1024**2
# Far above any device or pool, and still a 64-bit integer in every database we store sizes in.
MAX_SIZE_BYTES = 1024**6  # 1 EiB


def parse_size(value: str | int | float, field: str = "memory") -> int:
    """Parse "10GiB", "512MiB", "1.5GB" or an integer byte count into a positive number of bytes."""
    if isinstance(value, bool):
        raise InvalidRequest(f"{field}: expected a size like '10GiB' or a byte count, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0 or value != int(value):
            raise InvalidRequest(f"{field}: must be a positive whole number of bytes, got {value!r}")
        return _bounded(int(value), field, value)
    if not isinstance(value, str):
        raise InvalidRequest(f"{field}: expected a size like '10GiB', got {type(value).__name__}")
    match = _SIZE_RE.match(value)
    if match and not match.group(2):
        number = match.group(1)
        raise InvalidRequest(
            f"{field}: {value.strip()!r} has no unit: write {number}GiB (binary) or {number}GB (decimal)"
        )
    if not match or match.group(2).lower() not in _UNITS:
        if value.strip().startswith("-"):
            raise InvalidRequest(f"{field}: must be greater than zero, got {value!r}")
        raise InvalidRequest(f"{field}: cannot parse size {value!r} (use e.g. '10GiB', '512MiB' or '10GB')")
    number = float(match.group(1))
    size = int(number * _UNITS[match.group(2).lower()])
    if size <= 0:
        raise InvalidRequest(f"{field}: must be greater than zero, got {value!r}")
    return _bounded(size, field, value)


def _bounded(size: int, field: str, value: object) -> int:
    if size > MAX_SIZE_BYTES:
        raise InvalidRequest(f"{field}: {value!r} is larger than the 1EiB gpupool accepts")
    return size


def parse_percent(value: str | int | float, field: str = "compute") -> int:
    """Parse 25, "25" or "25%" into an integer percent in 1..100."""
    if isinstance(value, bool):
        raise InvalidRequest(f"{field}: expected a percentage 1..100, got {value!r}")
    if isinstance(value, str):
        text = value.strip().removesuffix("%").strip()
        try:
            number = float(text)
        except ValueError:
            raise InvalidRequest(f"{field}: cannot parse percentage {value!r}") from None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise InvalidRequest(f"{field}: expected a percentage 1..100, got {type(value).__name__}")
    if not math.isfinite(number) or number != int(number) or not 1 <= number <= 100:
        raise InvalidRequest(f"{field}: must be a whole percentage between 1 and 100, got {value!r}")
    return int(number)


def for_pydantic(parse: Callable[[Any, str], object], value: Any, field: str) -> None:
    """Run a parser inside a pydantic validator: its InvalidRequest becomes the ValueError pydantic
    reports (so the API answers 422 naming the field)."""
    try:
        parse(value, field)
    except InvalidRequest as exc:
        # pydantic's error already names the field (`memory: ...`): say it once, not twice.
        raise ValueError(exc.message.removeprefix(f"{field}: ")) from None


def format_size(num_bytes: int) -> str:
    """Human size in binary units, e.g. 10737418240 -> '10GiB', 85520809984 -> '79.6GiB'."""
    return _human(num_bytes, (("TiB", 1024**4), ("GiB", GiB), ("MiB", MiB), ("KiB", 1024)))


def format_size_decimal(num_bytes: int) -> str:
    """Human size in decimal units, e.g. 10737418240 -> '10.7GB'."""
    return _human(num_bytes, (("TB", 1000**4), ("GB", 1000**3), ("MB", 1000**2), ("kB", 1000)))


def describe_size(num_bytes: int) -> str:
    """A size both ways, so nobody wonders which one was understood: '10GiB (10.7GB)'."""
    return f"{format_size(num_bytes)} ({format_size_decimal(num_bytes)})"


def _human(num_bytes: int, units: tuple[tuple[str, int], ...]) -> str:
    for unit, scale in units:
        if num_bytes >= scale:
            return f"{num_bytes / scale:.1f}".removesuffix(".0") + unit
    return f"{num_bytes}B"
