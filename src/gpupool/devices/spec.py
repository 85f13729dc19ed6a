"""Parse a simulated pool spec `NODESxGPUSxMODEL[,NODESxGPUSxMODEL...]` into a node layout.

A group may put its GPUs in MIG mode: `1x1xH100-80GB:7x1g.10gb` (or `:3x1g.10gb+1x3g.40gb`) gives
every GPU of the group those instances; the parent is then not schedulable as a whole GPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gpupool.devices.models import GpuModel, lookup_model
from gpupool.errors import InvalidRequest
from gpupool.model.mig import MIG_SLICES, parse_profile, profile_slices

SPEC_FORM = "NODESxGPUSxMODEL[:MIG][,NODESxGPUSxMODEL...], e.g. '2x8xH100-80GB,1x1xA100-40GB:7x1g.5gb'"
MAX_GPUS_PER_NODE = 16  # the largest single-host boards (DGX-2, HGX-2) carry 16
MAX_NODES = 10_000
NODE_NAME_PREFIX = "sim-node-"

_GROUP_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*[xX]\s*(\S.*?)\s*$")
_MIG_PART_RE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\S+?)\s*$")
_NODES_GIVEN = re.compile(r"^\s*\d+\s*[xX]\s*\d+\s*[xX]")  # NODESxGPUSx...


@dataclass(frozen=True)
class PoolGroup:
    """One `NODESxGPUSxMODEL` group: `nodes` hosts with `gpus_per_node` GPUs of `model` each."""

    nodes: int
    gpus_per_node: int
    model: GpuModel
    mig: tuple[str, ...] = ()  # MIG instance profiles of every GPU; empty: MIG off


@dataclass(frozen=True)
class SimulatedNode:
    """One simulated host: its name, the group it came from and its GPUs."""

    name: str
    group_index: int
    gpus: int
    model: GpuModel
    mig: tuple[str, ...] = ()


def _invalid(spec: str, problem: str) -> InvalidRequest:
    return InvalidRequest(f"simulate spec {spec!r}: {problem} (expected {SPEC_FORM})")


def parse_spec(spec: str) -> tuple[PoolGroup, ...]:
    """Parse a spec into its groups, in order; InvalidRequest with a one-line reason when bad."""
    if not isinstance(spec, str) or not spec.strip():
        raise _invalid(str(spec), "the spec is empty")
    groups: list[PoolGroup] = []
    total_nodes = 0
    for position, text in enumerate(spec.split(","), start=1):
        match = _GROUP_RE.match(text)
        if match is None:
            raise _invalid(spec, f"group {position} {text.strip()!r} is not NODESxGPUSxMODEL")
        nodes, gpus = int(match.group(1)), int(match.group(2))
        model_text, _, mig_text = match.group(3).partition(":")
        if nodes < 1:
            raise _invalid(spec, f"group {position} needs at least 1 node, got {nodes}")
        if not 1 <= gpus <= MAX_GPUS_PER_NODE:
            raise _invalid(spec, f"group {position} needs 1..{MAX_GPUS_PER_NODE} GPUs per node, got {gpus}")
        try:
            model = lookup_model(model_text)
            mig = _mig_layout(mig_text, model) if mig_text.strip() else ()
        except InvalidRequest as exc:
            raise _invalid(spec, f"group {position}: {exc.message}") from None
        total_nodes += nodes
        if total_nodes > MAX_NODES:
            raise _invalid(spec, f"at most {MAX_NODES} nodes in all, got {total_nodes} or more")
        groups.append(PoolGroup(nodes=nodes, gpus_per_node=gpus, model=model, mig=mig))
    return tuple(groups)


def node_layout(groups: tuple[PoolGroup, ...]) -> tuple[SimulatedNode, ...]:
    """Name every node of the groups `sim-node-0`, `sim-node-1`, ..., numbering on across groups."""
    nodes: list[SimulatedNode] = []
    for group_index, group in enumerate(groups):
        for _ in range(group.nodes):
            name = f"{NODE_NAME_PREFIX}{len(nodes)}"
            nodes.append(SimulatedNode(name, group_index, group.gpus_per_node, group.model, group.mig))
    return tuple(nodes)


def _mig_layout(text: str, model: GpuModel) -> tuple[str, ...]:
    """`7x1g.10gb` or `3x1g.10gb+1x3g.40gb` -> the instance profiles of one GPU, in order."""
    if not model.mig_capable:
        raise InvalidRequest(f"{model.name} has no MIG mode")
    profiles: list[str] = []
    for part in text.split("+"):
        match = _MIG_PART_RE.match(part)
        count, profile = (int(match.group(1)), match.group(2)) if match else (1, part)
        profiles += [parse_profile(profile)] * count
    slices = sum(profile_slices(profile)[0] for profile in profiles)
    if not profiles or slices > MIG_SLICES:
        raise InvalidRequest(f"MIG layout {text!r} takes {slices} of {MIG_SLICES} compute slices")
    return tuple(profiles)


def one_node_spec(value: str, source: str) -> str:
    """The spec `1xGPUSxMODEL` of one host's simulated GPUs, from `GPUSxMODEL` (or `1xGPUSxMODEL`).

    Raises InvalidRequest naming `source` (e.g. the label it came from) when it is not one node.
    """
    value = value.strip()
    spec = value if _NODES_GIVEN.match(value) else f"1x{value}"
    try:
        groups = parse_spec(spec)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{source}: {exc.message}") from None
    if len(groups) != 1 or groups[0].nodes != 1:
        raise InvalidRequest(f"{source}: one node's GPUs only, e.g. 4xH100-80GB")
    return spec
