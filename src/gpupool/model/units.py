"""Sizes and percentages, parsed once here so every layer speaks bytes and integer percent."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from gpupool.errors import InvalidRequest

_UNITS: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
    "ti": 1024**4,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")

GiB = 1024**3
MiB = 1024**2
# Far above any device or pool, and still a 64-bit integer in every database we store sizes in.
MAX_SIZE_BYTES = 1024**6  # 1 EiB


def parse_size(value: str | int | float, field: str = "memory") -> int:
    """Parse "10GiB", "512MiB", "1.5G" or a byte count into a positive number of bytes."""
    if isinstance(value, bool):
        raise InvalidRequest(f"{field}: expected a size like '10GiB' or a byte count, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value <= 0 or value != int(value):
            raise InvalidRequest(f"{field}: must be a positive whole number of bytes, got {value!r}")
        return _bounded(int(value), field, value)
    if not isinstance(value, str):
        raise InvalidRequest(f"{field}: expected a size like '10GiB', got {type(value).__name__}")
    match = _SIZE_RE.match(value)
    if not match or match.group(2).lower() not in _UNITS:
        raise InvalidRequest(f"{field}: cannot parse size {value!r} (use e.g. '10GiB', '512MiB', '2G')")
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
        raise ValueError(exc.message) from None


def format_size(num_bytes: int) -> str:
    """Human size in binary units, e.g. 10737418240 -> '10GiB'."""
    for unit, scale in (("TiB", 1024**4), ("GiB", GiB), ("MiB", MiB), ("KiB", 1024)):
        if num_bytes >= scale:
            value = num_bytes / scale
            return f"{value:.0f}{unit}" if value == int(value) else f"{value:.1f}{unit}"
    return f"{num_bytes}B"
