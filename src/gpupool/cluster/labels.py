"""Ray node labels gpupool reads: the pool node name and a simulated GPU spec for the node.

    ray start --labels='{"gpupool.io/node": "gpu-a", "gpupool.io/simulate": "4xH100-80GB"}'

A Ray node is one GPU group, so the simulate label is `GPUSxMODEL` (label values cannot hold
commas); `1xGPUSxMODEL` is accepted too. Without a node label the node is `ray-<id[:8]>`.
"""

from __future__ import annotations

from collections.abc import Mapping

from gpupool.devices import one_node_spec

NODE_LABEL = "gpupool.io/node"
SIMULATE_LABEL = "gpupool.io/simulate"
RAY_NAME_PREFIX = "ray-"


def node_name(ray_node_id: str, labels: Mapping[str, str]) -> str:
    """The pool's name for a Ray node: its `gpupool.io/node` label, else `ray-<first 8 hex>`."""
    named = labels.get(NODE_LABEL, "").strip()
    return named or f"{RAY_NAME_PREFIX}{ray_node_id[:8]}"


def simulate_spec(labels: Mapping[str, str]) -> str | None:
    """The one-node simulated spec (`1xGPUSxMODEL`) a node's label asks for, or None.

    Raises InvalidRequest naming the label when it is not `GPUSxMODEL` for exactly one node.
    """
    value = labels.get(SIMULATE_LABEL, "").strip()
    if not value:
        return None
    return one_node_spec(value, f"label {SIMULATE_LABEL}={value!r}")
