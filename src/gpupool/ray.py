"""`gpupool.ray`: Ray tasks and actors on a gpupool vGPU, pinned to the node of their claim.

    import gpupool.ray

    @gpupool.ray.remote(memory="10GiB", compute=25)
    def train(step: int) -> float: ...

    ray.get(train.remote(1))   # claim a vGPU, run on its node with its environment, then release

Ray's own `num_gpus=0.25` shares a GPU by count only; here the task gets a claim with a memory
quota and compute share (enforced by MPS on real GPUs), placed by gpupool's scheduler. The
claim's environment (CUDA_VISIBLE_DEVICES by UUID, MPS limits) reaches the task through
`runtime_env={"env_vars": ...}`, and `NodeAffinitySchedulingStrategy(soft=False)` pins it to the
bound node. A task's claim is released when its result is ready (or it failed); an actor's when
`release()` is called on it.

Layer: like the CLI, a client of the REST API (SDK + model); it never imports the server side.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpupool.client import Client
from gpupool.errors import GpupoolError, InvalidRequest
from gpupool.model.wire import ClaimPublic

log = logging.getLogger("gpupool.ray")

POLL_S = 0.2


@dataclass(frozen=True)
class ClaimSettings:
    """What each call claims (`memory` like "10GiB", `compute` in %), where, and how long it waits (s)."""

    gpus: int = 1
    memory: str | int | None = None
    compute: int | str | None = None
    model: str | None = None
    priority: int = 0
    url: str | None = None
    token: str | None = None
    wait_s: float = 600.0


@dataclass(frozen=True)
class Placement:
    """A bound claim and the Ray node its devices are on."""

    claim: ClaimPublic
    ray_node_id: str


def place(settings: ClaimSettings) -> Placement:
    """Claim, wait until bound (at most `wait_s`), and find the bound node's Ray node id."""
    with Client(settings.url, settings.token) as client:
        claim = client.claim(
            gpus=settings.gpus,
            memory=settings.memory,
            compute=settings.compute,
            model=settings.model,
            priority=settings.priority,
        )
        try:
            deadline = time.monotonic() + settings.wait_s
            while claim.state == "pending" and time.monotonic() < deadline:
                time.sleep(POLL_S)
                claim = client.get_claim(claim.id)
            if claim.state != "bound":
                raise InvalidRequest(
                    f"claim {claim.id} is {claim.state} after {settings.wait_s:g}s: {claim.reason}"
                )
            node = claim.bindings[0].node
            listing = client.nodes()
            ray_id = next((n.ray_node_id for n in listing.items if n.name == node), None)
            if listing.mode != "ray" or not ray_id:
                raise InvalidRequest("gpupool.ray needs a server in cluster mode (`gpupool serve --ray ...`)")
        except BaseException:
            with contextlib.suppress(GpupoolError):
                client.release(claim.id)
            raise
    return Placement(claim, ray_id)


def release(settings: ClaimSettings, claim_id: str) -> None:
    """Release a claim; a failure is logged (the claim may already be ended)."""
    try:
        with Client(settings.url, settings.token) as client:
            client.release(claim_id)
    except GpupoolError as exc:
        log.warning("could not release claim %s: %s", claim_id, exc.message)


def _pinned(options: dict[str, Any], placement: Placement) -> dict[str, Any]:
    """Ray options: the caller's, pinned to the bound node, with the claim's environment added."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    runtime_env = dict(options.get("runtime_env") or {})
    runtime_env["env_vars"] = {**runtime_env.get("env_vars", {}), **placement.claim.env}
    strategy = NodeAffinitySchedulingStrategy(placement.ray_node_id, soft=False)
    return {**options, "runtime_env": runtime_env, "scheduling_strategy": strategy}


class ClaimedFunction:
    """A Ray remote function whose every `.remote()` call holds its own vGPU claim."""

    def __init__(
        self, function: Callable[..., Any], settings: ClaimSettings, options: dict[str, Any]
    ) -> None:
        self._function = function
        self._settings = settings
        self._options = options
        self._remote: Any = None

    def options(self, **options: Any) -> ClaimedFunction:
        return ClaimedFunction(self._function, self._settings, {**self._options, **options})

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Claim, submit pinned to the bound node, and release when the result is ready."""
        import ray

        if self._remote is None:
            self._remote = ray.remote(self._function)
        placement = place(self._settings)
        claim_id = placement.claim.id
        try:
            ref = self._remote.options(**_pinned(self._options, placement)).remote(*args, **kwargs)
        except BaseException:
            release(self._settings, claim_id)
            raise
        ref.future().add_done_callback(lambda _done: release(self._settings, claim_id))
        return ref


class ClaimedActor:
    """A Ray actor on a vGPU; method calls go to `handle`. `release()` ends the actor and its claim."""

    def __init__(self, handle: Any, claim: ClaimPublic, settings: ClaimSettings) -> None:
        self.handle = handle
        self.claim = claim
        self._settings = settings

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)

    def release(self) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.kill(self.handle, no_restart=True)
        release(self._settings, self.claim.id)

    def __enter__(self) -> ClaimedActor:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


class ClaimedActorClass:
    """A Ray actor class whose every instance holds its own vGPU claim."""

    def __init__(self, cls: type, settings: ClaimSettings, options: dict[str, Any]) -> None:
        self._cls = cls
        self._settings = settings
        self._options = options
        self._remote: Any = None

    def options(self, **options: Any) -> ClaimedActorClass:
        return ClaimedActorClass(self._cls, self._settings, {**self._options, **options})

    def remote(self, *args: Any, **kwargs: Any) -> ClaimedActor:
        import ray

        if self._remote is None:
            self._remote = ray.remote(self._cls)
        placement = place(self._settings)
        try:
            handle = self._remote.options(**_pinned(self._options, placement)).remote(*args, **kwargs)
        except BaseException:
            release(self._settings, placement.claim.id)
            raise
        return ClaimedActor(handle, placement.claim, self._settings)


def remote(
    *,
    gpus: int = 1,
    memory: str | int | None = None,
    compute: int | str | None = None,
    model: str | None = None,
    priority: int = 0,
    url: str | None = None,
    token: str | None = None,
    wait_s: float = 600.0,
    **ray_options: Any,
) -> Callable[[Any], Any]:
    """Decorator: a Ray task or actor on `gpus` vGPUs of `memory` and `compute` % each.

    Other keyword arguments are Ray's own options (`num_cpus`, `max_retries`, `runtime_env`...).
    URL and token default to GPUPOOL_URL / GPUPOOL_TOKEN or the client config.
    """
    settings = ClaimSettings(gpus, memory, compute, model, priority, url, token, wait_s)

    def wrap(target: Any) -> ClaimedFunction | ClaimedActorClass:
        if inspect.isclass(target):
            return ClaimedActorClass(target, settings, dict(ray_options))
        return ClaimedFunction(target, settings, dict(ray_options))

    return wrap
