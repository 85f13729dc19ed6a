"""Field types of the REST schemas whose OpenAPI description is exactly what the server accepts.

A client that reads the schema (or fuzzes from it) must never be surprised: every value the schema
allows is accepted and every value it forbids is refused with 422. So integers are JSON integers
(`60.0` is one, `"60"` and `true` are not), and size and percent strings carry the pattern the
server checks them against.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainValidator, Strict, WithJsonSchema

from gpupool.errors import InvalidRequest
from gpupool.model.claim import MAX_LABEL_KEY_CHARS, MAX_LABEL_VALUE_CHARS, MAX_LABELS
from gpupool.model.units import MiB, parse_size

# A number with a unit (`SIZE_RULE`: binary GiB/Gi/..., decimal GB/G/..., or B for bytes), never
# zero, at most 999999.999 of a unit (below 1 EiB), or up to 18 digits of bytes: "10GiB", "512MiB",
# "1.5GB", "4096B". Units are case-insensitive. A bare integer in JSON is a byte count.
SIZE_BODY = (
    r" *(?:0*[1-9][0-9]{0,17} *[Bb]"
    r"|(?:0*[1-9][0-9]{0,5}(?:\.[0-9]{1,3})?|0*\.(?:[1-9][0-9]{0,2}|0[1-9][0-9]?|00[1-9]))"
    r" *[KkMmGgTt][Ii]?[Bb]?) *"
)
SIZE_PATTERN = f"^{SIZE_BODY}$"
# A MIG profile as `gpupool.model.mig.parse_profile` reads it: "1g.10gb", "3g.40gb", "1g.10gb+me".
MIG_PROFILE_PATTERN = r"^ *[1-7][Gg]\.[0-9]{1,3}[Gg][Bb](?:\+[Mm][Ee])? *$"
# A whole percentage 1..100, optionally with a `%`: "25", "25%", "100.0".
PERCENT_PATTERN = r"^ *0*(?:100|[1-9][0-9]?)(?:\.0{1,3})? *%? *$"
_SIZE_RE = re.compile(SIZE_PATTERN)
_PERCENT_RE = re.compile(PERCENT_PATTERN)


def _whole_float_to_int(value: Any) -> Any:
    """JSON does not tell 60 from 60.0, so neither does the API; 60.5 stays a float and is refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WHOLE = BeforeValidator(_whole_float_to_int)
WholeNumber = Annotated[int, Strict(), WHOLE]
"""A JSON integer: strings and booleans are refused, integral floats accepted. Inside a union, give
the bounds before WHOLE (`Annotated[int, Strict(), Ge(1), Le(9), WHOLE] | None`) so the schema
carries them as `minimum`/`maximum`."""

LabelKey = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_KEY_CHARS)]
LabelValue = Annotated[str, Field(max_length=MAX_LABEL_VALUE_CHARS)]
Labels = Annotated[dict[LabelKey, LabelValue], Field(max_length=MAX_LABELS)]


def check_size_text(value: str) -> str:
    """The value if it matches SIZE_PATTERN; a ValueError pydantic reports under the field's name
    (the size parser's own words when it can say what is wrong, e.g. a missing unit)."""
    if not _SIZE_RE.fullmatch(value):  # fullmatch: `$` would let a trailing newline in
        try:
            parse_size(value, "size")
        except InvalidRequest as exc:
            raise ValueError(exc.message.removeprefix("size: ")) from None
        raise ValueError(
            f"{value[:40]!r} is out of range (at most 999999.999 of a unit, or 18 digits of bytes)"
        )
    return value


def check_percent_text(value: str) -> str:
    if not _PERCENT_RE.fullmatch(value):
        raise ValueError(f"must be a whole percentage between 1 and 100, got {value[:40]!r}")
    return value


MAX_WIRE_BYTES = 10**18
"""The largest byte count the API documents: below gpupool's 1 EiB even for a client that compares
in doubles (as JSON Schema validators do, where 10**18 + 64 still reads as 10**18)."""


MIN_CLAIM_MEMORY_BYTES = MiB
"""MPS pins device memory in whole MiB; a smaller quota is always a mistake (a unit-less byte count)."""


def parse_claim_memory(value: int | str, field: str = "memory") -> int:
    """A claim's memory per vGPU: a size (see `SIZE_RULE`) of at least 1 MiB."""
    size = parse_size(value, field)
    if size < MIN_CLAIM_MEMORY_BYTES:
        raise InvalidRequest(
            f"{field}: {size} bytes is less than 1MiB, the smallest vGPU memory limit "
            f"(a number without a unit is bytes: did you mean '{size}GiB'?)"
        )
    return size


def _claim_memory_value(value: Any) -> int | str | None:
    if value is None:
        return None
    value = _whole_float_to_int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 1 and value < MIN_CLAIM_MEMORY_BYTES:
            try:
                parse_claim_memory(value)
            except InvalidRequest as exc:
                raise ValueError(exc.message.removeprefix("memory: ")) from None
        # Compared as JSON Schema validators compare (doubles), so the documented maximum is exact.
        if value < 1 or float(value) > MAX_WIRE_BYTES:
            low, high = MIN_CLAIM_MEMORY_BYTES, MAX_WIRE_BYTES
            raise ValueError(f"must be a byte count between {low} (1MiB) and {high}, got {value}")
        return value
    if isinstance(value, str):
        return check_size_text(value)
    raise ValueError(f"expected a size like '10GiB' or a byte count, got {type(value).__name__}")


def _percent_value(value: Any) -> int | str | None:
    if value is None:
        return None
    value = _whole_float_to_int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 100:
            raise ValueError(f"must be a whole percentage between 1 and 100, got {value}")
        return value
    if isinstance(value, str):
        return check_percent_text(value)
    raise ValueError(f"expected a percentage 1..100, got {type(value).__name__}")


ClaimMemoryValue = Annotated[
    int | str | None,
    PlainValidator(_claim_memory_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": MIN_CLAIM_MEMORY_BYTES, "maximum": MAX_WIRE_BYTES},
                {"type": "string", "pattern": SIZE_PATTERN, "examples": ["10GiB", "512MiB", "10GB"]},
                {"type": "null"},
            ]
        }
    ),
]
"""A claim's memory per vGPU: bytes (JSON integer, at least 1 MiB) or text with a unit; null when
not given. Text below 1 MiB is well-formed but no vGPU can be that small: the API answers 409."""

PercentValue = Annotated[
    int | str | None,
    PlainValidator(_percent_value),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 100},
                {"type": "string", "pattern": PERCENT_PATTERN, "examples": ["25%"]},
                {"type": "null"},
            ]
        }
    ),
]
"""A whole percentage 1..100 (JSON integer, or text like "25%"); null when not given."""
