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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from gpupool.isolation import launch_env
from gpupool.kube import keys
from gpupool.model import Binding, Claim, ClaimSpec, ClaimState, Tenant
from gpupool.pool import PoolService

RESERVATION_TTL_S = 30.0
"""How long room planned for a pod at filter time waits for its bind, in seconds (kube-scheduler
binds within milliseconds unless a later plugin turns the pod back)."""
ACTOR = "kubernetes"
"""The actor of every event the Kubernetes adapter writes to the audit trail."""


def is_kube_claim(claim: Claim) -> bool:
    """A claim of a pod: made by the extender, owned by the pod's namespace (so a tenant who labels
    a claim of its own like one can only ever point it at pods of its own namespace)."""
    labels = claim.spec.labels
    namespace = labels.get(keys.LABEL_POD, "").partition("/")[0]
    return (
        labels.get(keys.LABEL_ORIGIN) == keys.ORIGIN
        and keys.LABEL_POD_UID in labels
        and claim.tenant == namespace
    )


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
    """Active claims of pods, and the binds in flight (thread-safe).

    Pod UID -> claim id is indexed in memory: rebuilt from the store by every full `active()`
    (start-up, each resync) and kept up by `create`; `for_pod` checks the claim is still active
    in the store, so a claim ended elsewhere (admin, preemption) is never taken for a live one.
    """

    def __init__(self, pool: PoolService) -> None:
        self.pool = pool
        self._lock = threading.Lock()
        self._in_flight: dict[str, _InFlight] = {}
        self._reserved: dict[str, tuple[tuple[Binding, ...], float]] = {}  # UID -> (room, until)
        self._by_uid: dict[str, str] | None = None  # pod UID -> claim id
        self._created: dict[str, str] = {}  # created since the last full list began

    def active(self) -> dict[str, Claim]:
        """Pod UID -> its active claim (pending or bound), read whole from the store."""
        claims = self.pool.store.list_claims(states=[ClaimState.PENDING, ClaimState.BOUND], limit=1_000_000)
        found = {pod_uid_of(c): c for c in claims if is_kube_claim(c)}
        with self._lock:
            index = {uid: claim.id for uid, claim in found.items()}
            for uid, claim_id in self._created.items():  # made while the list was read
                index.setdefault(uid, claim_id)
            self._created = {}
            self._by_uid = index
        return found

    def for_pod(self, uid: str) -> Claim | None:
        """The pod's active claim, or None."""
        if not uid:
            return None
        with self._lock:
            index = self._by_uid
        if index is None:
            return self.active().get(uid)
        claim_id = index.get(uid)
        if claim_id is None:
            return None
        claim = self.pool.store.get_claim(claim_id)
        if claim.state.is_active:
            return claim
        with self._lock:
            if index.get(uid) == claim_id:
                index.pop(uid, None)
        return None

    def create(self, tenant: Tenant, spec: ClaimSpec, node: str, held: Sequence[Binding] = ()) -> Claim:
        """Record the pod's claim bound on `node` (`PoolService.claim_on_node`) and index it."""
        claim = self.pool.claim_on_node(tenant, spec, node, actor=ACTOR, held=held)
        uid = pod_uid_of(claim)
        with self._lock:
            self._created[uid] = claim.id
            if self._by_uid is not None:
                self._by_uid[uid] = claim.id
        return claim

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
