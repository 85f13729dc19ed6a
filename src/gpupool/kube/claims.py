"""The link between pods and the pool's claims: a pod's claim carries the pod's UID as a label.

Shared by the extender (which creates claims at bind) and the pod controller (which releases
them): `binding(uid)` marks a bind in flight, so a concurrent reconcile never releases the claim
of a pod whose Binding is still being written.

Reservations are kube-scheduler's "assume" on gpupool's side: kube-scheduler binds a pod in the
background while it already places the next ones, so the room gpupool planned for a pod at
filter time is held (in memory, for `RESERVATION_TTL_S` at most) until that pod's bind, and
the next pods are judged without it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from gpupool.isolation import launch_env
from gpupool.kube import keys
from gpupool.model import Binding, Claim, ClaimState
from gpupool.pool import PoolService

RESERVATION_TTL_S = 30.0
"""How long room planned for a pod at filter time waits for its bind, in seconds (kube-scheduler
binds within milliseconds unless a later plugin turns the pod back)."""
ACTOR = "kubernetes"
"""The actor of every event the Kubernetes adapter writes to the audit trail."""


def is_kube_claim(claim: Claim) -> bool:
    return claim.spec.labels.get(keys.LABEL_ORIGIN) == keys.ORIGIN and keys.LABEL_POD_UID in claim.spec.labels


def pod_uid_of(claim: Claim) -> str:
    return claim.spec.labels.get(keys.LABEL_POD_UID, "")


def bound_node(claim: Claim) -> str:
    """The node a bound claim's devices are on ('' when it holds none)."""
    return claim.bindings[0].node if claim.bindings else ""


def bound_annotations(claim: Claim) -> dict[str, str]:
    """The annotations a bound claim's pod gets: the values of its launch environment."""
    env = launch_env(claim)
    notes = {note: env[name] for name, note in keys.ENV_FROM_ANNOTATION.items() if name in env}
    notes[keys.BOUND_CLAIM] = claim.id
    notes[keys.BOUND_TENANT] = claim.tenant
    return notes


@dataclass
class _InFlight:
    lock: threading.Lock = field(default_factory=threading.Lock)
    holders: int = 0  # binds of this pod running or waiting


class PodClaims:
    """Active claims of pods, and the binds in flight (thread-safe)."""

    def __init__(self, pool: PoolService) -> None:
        self.pool = pool
        self._lock = threading.Lock()
        self._in_flight: dict[str, _InFlight] = {}
        self._reserved: dict[str, tuple[tuple[Binding, ...], float]] = {}  # UID -> (room, until)

    def active(self) -> dict[str, Claim]:
        """Pod UID -> its active claim (pending or bound)."""
        claims = self.pool.store.list_claims(states=[ClaimState.PENDING, ClaimState.BOUND], limit=1_000_000)
        return {pod_uid_of(c): c for c in claims if is_kube_claim(c)}

    def for_pod(self, uid: str) -> Claim | None:
        return self.active().get(uid) if uid else None

    def release(self, claim: Claim, reason: str) -> Claim:
        """End the claim (idempotent) and let waiting claims take the room."""
        ended = self.pool.store.end_claim(claim.id, ClaimState.RELEASED, actor=ACTOR, reason=reason)
        self.pool.schedule()
        return ended

    @contextmanager
    def binding(self, uid: str) -> Iterator[None]:
        """Hold while binding pod `uid`: one bind per pod at a time, and reconcile keeps off it."""
        with self._lock:
            entry = self._in_flight.setdefault(uid, _InFlight())
            entry.holders += 1
        try:
            with entry.lock:
                yield
        finally:
            with self._lock:
                entry.holders -= 1
                if entry.holders == 0:
                    del self._in_flight[uid]

    def reserve(self, uid: str, bindings: tuple[Binding, ...], now: float | None = None) -> None:
        """Hold room for pod `uid` until its bind (or the TTL); a new plan replaces the old."""
        until = (time.monotonic() if now is None else now) + RESERVATION_TTL_S
        with self._lock:
            self._reserved[uid] = (bindings, until)

    def unreserve(self, uid: str) -> None:
        with self._lock:
            self._reserved.pop(uid, None)

    def held(self, except_uid: str = "", now: float | None = None) -> list[Binding]:
        """The room reserved for other pods (expired reservations are dropped)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._reserved = {uid: entry for uid, entry in self._reserved.items() if entry[1] > now}
            return [b for uid, (room, _) in self._reserved.items() if uid != except_uid for b in room]

    def in_flight(self, uid: str) -> bool:
        with self._lock:
            return uid in self._in_flight
