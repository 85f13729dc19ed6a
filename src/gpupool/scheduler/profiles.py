"""Scheduler profiles as data: which plugins run, with what weights and arguments, and which GPU picker.

`build_scheduler` turns a profile into a `Scheduler`; a plugin named both as a score and as the
picker is one instance (FGD picks the GPU by the same delta it scores the node with).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpupool.errors import InvalidRequest
from gpupool.scheduler.framework import (
    Action,
    FilterPlugin,
    GpuPicker,
    Observer,
    PluginContext,
    Scheduler,
    ScorePlugin,
    SlotFilterPlugin,
)
from gpupool.scheduler.registry import DEFAULT_REGISTRY, Registry


@dataclass(frozen=True)
class PluginRef:
    """A plugin by registry name, with its weight (scores only) and arguments."""

    name: str
    weight: float = 1.0
    args: Mapping[str, Any] = field(default_factory=dict)


FILTERS = (PluginRef("gpu-fit"), PluginRef("node-fit"))
# Rules VM hardware imposes on single GPUs; every profile runs them (they cost nothing without VMs).
SLOT_FILTERS = (
    PluginRef("device-choice"),
    PluginRef("vgpu-profile"),
    PluginRef("passthrough"),
    PluginRef("host-busy"),
)
PAPER_WEIGHT = 1000.0  # the artifact enables exactly one score plugin, with weight 1000


@dataclass(frozen=True)
class Profile:
    """A named policy: filters, weighted scores, GPU picker."""

    name: str
    summary: str
    scores: tuple[PluginRef, ...]
    picker: PluginRef
    filters: tuple[PluginRef, ...] = FILTERS
    actions: tuple[PluginRef, ...] = ()  # second passes for a claim no node fits (KAI-style actions)
    slot_filters: tuple[PluginRef, ...] = SLOT_FILTERS


def _paper(name: str, summary: str, picker: str, **args: Any) -> Profile:
    return Profile(name, summary, (PluginRef(name, PAPER_WEIGHT, args),), PluginRef(picker))


OURS_PROFILE = Profile(
    "ours",
    "online FGD over blended FGD + capacity fragmentation, crowding-aware leftovers and a reserve "
    "for model-constrained demand (default)",
    (
        PluginRef(
            "ours",
            PAPER_WEIGHT,
            {
                "workload": "online",
                "drift": 0.02,
                "measure": "blend0.5",
                "leftover": 1.0,
                "leftover_cpu": True,
                "crowding": 1000,
                "crowd_every": 256,
                "crowd_tolerance": 10,
                "foreign_idle": False,
                "reserve": 1.0,
                "resolution": 100,
                "tiebreak": "none",
            },
        ),
    ),
    PluginRef("ours"),
)

PROFILES: dict[str, Profile] = {
    profile.name: profile
    for profile in (
        _paper("random", "a random feasible node and GPU", "random"),
        _paper("dotprod", "Tetris dot product of free and request (packing)", "best"),
        _paper("gpu-clustering", "group claims of the same kind on nodes", "best"),
        _paper("gpu-packing", "shared GPUs, then free GPUs of used nodes, then free nodes", "best"),
        _paper("bestfit", "least weighted CPU+GPU leftover", "best"),
        _paper(
            "fgd",
            "fragmentation gradient descent; trace workload offline, learned online live",
            "fgd",
            workload="trace",
        ),
        Profile("binpack", "fullest node first, tightest GPU", (PluginRef("binpack"),), PluginRef("best")),
        Profile("spread", "emptiest node first", (PluginRef("spread"),), PluginRef("first")),
        Profile(
            "load-aware",
            "least busy GPUs by sampled utilization",
            (PluginRef("load-aware"),),
            PluginRef("load-aware"),
        ),
        OURS_PROFILE,
    )
}
ALIASES = {"default": "ours"}
DEFAULT_POLICY = "ours"


def resolve(name: str) -> Profile:
    """The profile for a policy name or alias; InvalidRequest for an unknown one."""
    key = ALIASES.get(name, name)
    try:
        return PROFILES[key]
    except KeyError:
        known = ", ".join(sorted([*PROFILES, *ALIASES]))
        raise InvalidRequest(f"policy: unknown policy {name!r} (known: {known})") from None


def build_scheduler(
    profile: Profile | str, context: PluginContext | None = None, registry: Registry = DEFAULT_REGISTRY
) -> Scheduler:
    """Instantiate a profile's plugins into a Scheduler."""
    chosen = resolve(profile) if isinstance(profile, str) else profile
    ctx = context or PluginContext()
    filters: list[FilterPlugin] = [registry.create(ref.name, ref.args, ctx) for ref in chosen.filters]
    instances: dict[str, Any] = {}
    scores: list[tuple[ScorePlugin, float]] = []
    for ref in chosen.scores:
        instances[ref.name] = registry.create(ref.name, ref.args, ctx)
        scores.append((instances[ref.name], ref.weight))
    picker: GpuPicker = instances.get(chosen.picker.name) or registry.create(
        chosen.picker.name, chosen.picker.args, ctx
    )
    observers: list[Observer] = [plugin for plugin in instances.values() if isinstance(plugin, Observer)]
    actions: list[Action] = [registry.create(ref.name, ref.args, ctx) for ref in chosen.actions]
    slot_filters: list[SlotFilterPlugin] = [
        registry.create(ref.name, ref.args, ctx) for ref in chosen.slot_filters
    ]
    return Scheduler(chosen.name, filters, scores, picker, observers, actions, slot_filters=slot_filters)
