"""Ray plumbing in one place: start a node's agent actor pinned to it, call it with a deadline.

`import ray` happens here, lazily, so gpupool imports (and serves one machine) without Ray.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from gpupool.cluster.actor import NodeAgentActor

AGENT_CONCURRENCY = 8
"""Threads per agent actor: a slow poll never delays a ping."""


class CallFailed(Exception):
    """An agent call did not answer in time, or its actor or node is gone (`dead`)."""

    def __init__(self, message: str, dead: bool) -> None:
        super().__init__(message)
        self.dead = dead


@functools.cache
def _actor_class() -> Any:
    import ray

    return ray.remote(NodeAgentActor)


def start_agent(ray_node_id: str, node: str, simulate: str | None) -> Any:
    """Start `node`'s agent actor on exactly that Ray node (never elsewhere), using no CPU slot."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return (
        _actor_class()
        .options(
            num_cpus=0,
            max_concurrency=AGENT_CONCURRENCY,
            max_restarts=0,
            scheduling_strategy=NodeAffinitySchedulingStrategy(ray_node_id, soft=False),
        )
        .remote(node, ray_node_id, simulate)
    )


def call(actor: Any, method: str, *args: Any, timeout_s: float) -> Any:
    """`actor.method(*args)` with a deadline in seconds; CallFailed on timeout or death."""
    import ray
    from ray.exceptions import GetTimeoutError, RayActorError

    ref = getattr(actor, method).remote(*args)
    try:
        return ray.get(ref, timeout=timeout_s)
    except GetTimeoutError:
        raise CallFailed(f"{method}: no answer in {timeout_s:g}s", dead=False) from None
    except RayActorError as exc:
        raise CallFailed(f"{method}: agent gone ({type(exc).__name__})", dead=True) from None


def kill(actor: Any) -> None:
    """Stop an agent actor now (best effort: its node may already be gone)."""
    import ray

    with contextlib.suppress(Exception):  # a dead node's actor may refuse; nothing else to do
        ray.kill(actor, no_restart=True)
