"""Which device models a claim may use: its model pattern, and MIG instances only by profile.

A MIG claim (`spec.mig`) matches only instances of its profile, and its model pattern then
applies to the parent GPU. Any other claim never matches an instance, whatever its pattern:
"H100*" must not take a 1g.10gb slice as if it were a whole H100.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from gpupool.model import ClaimSpec
from gpupool.model.mig import MIG_MARK, split_instance_model

MIG_HINT = " (MIG instances go only to claims that name a profile, e.g. --mig 1g.10gb)"


def allows_model(spec: ClaimSpec, model: str) -> bool:
    """May a vGPU of `spec` be placed on a device of this model (case-insensitive)?"""
    instance = split_instance_model(model)
    if spec.mig is not None:
        if instance is None or instance[1] != spec.mig:
            return False
        parent = instance[0]
        return spec.model is None or fnmatch.fnmatch(parent.lower(), spec.model.lower())
    if instance is not None:
        return False
    return spec.model is None or fnmatch.fnmatch(model.lower(), spec.model.lower())


def model_constraint(spec: ClaimSpec, names: Sequence[str]) -> tuple[tuple[str, ...] | None, str | None]:
    """(allowed model names, pattern for reasons) of a claim over a cluster's model vocabulary."""
    if spec.mig is None and not any(split_instance_model(name) for name in names):
        return None, spec.model  # the common case: no MIG in the pool, the pattern alone decides
    allowed = tuple(name for name in names if allows_model(spec, name))
    pattern = f"{spec.model or '*'}{MIG_MARK}{spec.mig}" if spec.mig is not None else spec.model
    return allowed, pattern


def has_mig_instances(names: Sequence[str]) -> bool:
    return any(split_instance_model(name) for name in names)
