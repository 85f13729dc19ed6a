"""Tenant quotas: a guaranteed share (never preempted) and a limit (never exceeded).

Amounts are GPU-equivalents (`2gpu`; a vGPU counts its dominant share of its device) and/or
bytes of GPU memory (`160GiB`). `parse_amount("4gpu,320GiB")` reads either or both.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema

from gpupool.errors import InvalidRequest
from gpupool.model.units import parse_size
from gpupool.model.wire_types import SIZE_BODY

_GPU_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*gpus?\s*$", re.IGNORECASE)
MAX_GPUS = 1_000_000.0


@dataclass(frozen=True)
class Quota:
    tenant: str
    guarantee_gpus: float | None = None
    limit_gpus: float | None = None
    guarantee_memory_bytes: int | None = None
    limit_memory_bytes: int | None = None

    def __post_init__(self) -> None:
        for low, high, what in (
            (self.guarantee_gpus, self.limit_gpus, "GPUs"),
            (self.guarantee_memory_bytes, self.limit_memory_bytes, "memory"),
        ):
            if low is not None and high is not None and low > high:
                raise InvalidRequest(f"quota: the guarantee ({what}) must not exceed the limit")

    @property
    def has_guarantee(self) -> bool:
        return self.guarantee_gpus is not None or self.guarantee_memory_bytes is not None

    @property
    def is_empty(self) -> bool:
        return not self.has_guarantee and self.limit_gpus is None and self.limit_memory_bytes is None


def parse_amount(text: str, field: str) -> tuple[float | None, int | None]:
    """`2gpu`, `1.5gpus`, `160GiB` or `4gpu,320GiB` -> (GPU-equivalents, bytes); `none` clears."""
    gpus: float | None = None
    memory: int | None = None
    if text.strip().lower() in ("", "none", "-"):
        return None, None
    for part in text.split(","):
        match = _GPU_RE.match(part)
        if match:
            value = float(match.group(1))
            if not math.isfinite(value) or value < 0 or value > MAX_GPUS:
                raise InvalidRequest(f"{field}: GPU amount out of range in {text!r}")
            gpus = value
        else:
            try:
                memory = parse_size(part, field)
            except InvalidRequest:
                raise InvalidRequest(
                    f"{field}: cannot parse {part.strip()!r} (use e.g. '2gpu', '160GiB' or '2gpu,160GiB')"
                ) from None
    return gpus, memory


# What the API accepts as an amount, exactly: `none` (or `-`, or empty), or comma-separated parts,
# each a GPU count with at most 6 digits and 3 decimals (`2gpu`, `0.5gpus`) or a size.
_GPU_PART = r" *(?:[0-9]{1,6}(?:\.[0-9]{1,3})?|\.[0-9]{1,3}) *[Gg][Pp][Uu][Ss]? *"
_PART = f"(?:{_GPU_PART}|{SIZE_BODY})"
AMOUNT_PATTERN = f"^(?: *(?:[Nn][Oo][Nn][Ee]|-)? *|{_PART}(?:,{_PART})*)$"
_AMOUNT_RE = re.compile(AMOUNT_PATTERN)


def _amount_value(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected text like '2gpu', '160GiB' or '2gpu,160GiB', got {type(value).__name__}")
    if len(value) > 64 or not _AMOUNT_RE.fullmatch(value):
        raise ValueError(f"cannot parse {value[:40]!r} (use e.g. '2gpu', '160GiB', '2gpu,160GiB' or 'none')")
    return value


Amount = Annotated[
    str | None,
    PlainValidator(_amount_value),
    WithJsonSchema(
        {"anyOf": [{"type": "string", "maxLength": 64, "pattern": AMOUNT_PATTERN}, {"type": "null"}]}
    ),
]


class QuotaUpdate(BaseModel):
    """Body of PUT /v1/tenants/{name}/quota: amounts like `2gpu`, `160GiB`, `2gpu,160GiB` or `none`."""

    model_config = ConfigDict(extra="forbid", strict=True)

    guarantee: Amount = Field(None, description="guaranteed share: never preempted")
    limit: Amount = Field(None, description="hard cap: claims above it wait")

    def to_quota(self, tenant: str) -> Quota:
        guarantee_gpus, guarantee_memory = parse_amount(self.guarantee or "", "guarantee")
        limit_gpus, limit_memory = parse_amount(self.limit or "", "limit")
        return Quota(tenant, guarantee_gpus, limit_gpus, guarantee_memory, limit_memory)


class QuotaPublic(BaseModel):
    tenant: str
    guarantee_gpus: float | None = None
    limit_gpus: float | None = None
    guarantee_memory_bytes: int | None = None
    limit_memory_bytes: int | None = None


class QuotaList(BaseModel):
    items: list[QuotaPublic]


def quota_public(quota: Quota) -> QuotaPublic:
    return QuotaPublic.model_validate(quota, from_attributes=True)
