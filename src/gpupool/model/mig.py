"""MIG profiles and how MIG instances are named as devices.

An instance is a device of its own whose model is "<parent model> MIG <profile>", e.g.
"H100-80GB MIG 1g.10gb" (the NVML backend and the simulated one both name them so). A claim asks
for an instance explicitly with `mig`; whole-GPU and fractional claims never land on one.
"""

from __future__ import annotations

import re

from gpupool.errors import InvalidRequest

PROFILE_RE = re.compile(r"^([1-7])g\.(\d{1,3})gb(\+me)?$")
MIG_MARK = " MIG "
MIG_SLICES = 7  # compute slices of a MIG-capable GPU (A100, H100, H200)


def parse_profile(profile: str) -> str:
    """A normalised profile name such as `1g.10gb` or `1g.10gb+me`; InvalidRequest otherwise."""
    value = str(profile).strip().lower()
    if not PROFILE_RE.match(value):
        raise InvalidRequest(f"mig: expected a MIG profile like 1g.10gb or 3g.40gb, got {profile!r}")
    return value


def profile_slices(profile: str) -> tuple[int, int]:
    """(compute slices out of 7, memory in GB as named) of a profile: `3g.40gb` -> (3, 40)."""
    match = PROFILE_RE.match(parse_profile(profile))
    assert match is not None
    return int(match.group(1)), int(match.group(2))


def instance_model(parent_model: str, profile: str) -> str:
    """The model name of an instance: ("H100-80GB", "1g.10gb") -> "H100-80GB MIG 1g.10gb"."""
    return f"{parent_model}{MIG_MARK}{parse_profile(profile)}"


def split_instance_model(model: str) -> tuple[str, str] | None:
    """(parent model, profile) of a MIG instance's model name; None for a whole GPU's."""
    parent, mark, profile = model.rpartition(MIG_MARK)
    if not mark or not PROFILE_RE.match(profile.strip().lower()):
        return None
    return parent, profile.strip().lower()
