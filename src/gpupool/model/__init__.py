"""Frozen value types shared by every layer; imports nothing else of gpupool but errors."""

from gpupool.model.claim import MAX_GPUS_PER_CLAIM, Binding, Claim, ClaimSpec, ClaimState, Event
from gpupool.model.device import Device, DeviceTelemetry, ProcessUsage
from gpupool.model.tenant import ADMIN, Tenant
from gpupool.model.units import GiB, MiB, describe_size, format_size, parse_percent, parse_size

__all__ = [
    "ADMIN",
    "MAX_GPUS_PER_CLAIM",
    "Binding",
    "Claim",
    "ClaimSpec",
    "ClaimState",
    "Device",
    "DeviceTelemetry",
    "Event",
    "GiB",
    "MiB",
    "ProcessUsage",
    "Tenant",
    "describe_size",
    "format_size",
    "parse_percent",
    "parse_size",
]
