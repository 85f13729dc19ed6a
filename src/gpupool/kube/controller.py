"""The pod lifecycle controller: level-triggered reconcile of pods (desired) against claims (actual).

It converges on every pod event, on every full list (start-up and each resync) and on a short
tick; each step is idempotent, so a crash at any point is repaired by the next pass:

- a pod deleted, Succeeded or Failed -> its claim is released;
- a claim whose pod is gone, or whose pod never got bound (a bind cut short by a crash) -> released;
- a claim preempted by gpupool -> its pod is evicted with the claim's remaining grace period;
- a pod bound by gpupool whose claim is not active -> reported (log, audit event, pod event), once;
- when room frees up, Pending vGPU pods are touched so kube-scheduler retries them now rather
  than after its back-off.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from gpupool.kube import keys, pods
from gpupool.kube.apiclient import KubeApi, KubeApiError
from gpupool.kube.claims import ACTOR, PodClaims, bound_node, pod_uid_of
from gpupool.kube.pods import Pod
from gpupool.model import Claim

log = logging.getLogger("gpupool.kube")

TICK_S = 0.5
"""How often preemptions and freed room are checked, in seconds."""


class PodController:
    """Keeps a cache of vGPU pods (fed by the pod informer) and converges claims to it."""

    def __init__(self, claims: PodClaims, api: KubeApi, clock: Callable[[], float] = time.time) -> None:
        self.claims = claims
        self.api = api
        self.clock = clock
        self._pods: dict[str, Pod] = {}  # UID -> pod, vGPU pods and pods gpupool bound only
        self._lock = threading.RLock()
        self._evicted: set[str] = set()  # pod UIDs whose eviction was asked
        self._reported: set[str] = set()  # pod UIDs reported as bound without a claim
        self._allocations: dict[str, tuple[int, int]] | None = None
        self._listed = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick_loop, name="gpupool-kube-tick", daemon=True)

    # ------------------------------------------------------------- informer
    def on_list(self, items: list[Pod]) -> None:
        """A full list of pods: replace the cache and reconcile everything. After the first one
        (gpupool just started), Pending vGPU pods are requeued: kube-scheduler parks pods whose
        extender call failed while gpupool was down for up to a minute."""
        with self._lock:
            first = not self._listed
            self._listed = True
            self._pods = {pods.uid(p): p for p in items if _ours(p)}
            self.reconcile()
        if first:
            self._requeue_waiting()

    def on_event(self, kind: str, pod: Pod) -> None:
        uid = pods.uid(pod)
        with self._lock:
            if kind == "DELETED":
                self._pods.pop(uid, None)
                self.claims.unreserve(uid)
            elif _ours(pod):
                self._pods[uid] = pod
            else:
                return
            claim = self.claims.for_pod(uid)
            if claim is not None:
                self._converge(claim, self._pods.get(uid), fresh=True)
            elif kind != "DELETED":
                self._check_claimed(pod, None)

    # ------------------------------------------------------------ reconcile
    def reconcile(self) -> None:
        """One full pass: every pod claim against the cached pods, and every bound pod against claims."""
        with self._lock:
            active = self.claims.active()
            for uid, claim in active.items():
                self._converge(claim, self._pods.get(uid), fresh=False)
            for pod in list(self._pods.values()):
                self._check_claimed(pod, active.get(pods.uid(pod)))

    def _converge(self, claim: Claim, pod: Pod | None, fresh: bool) -> None:
        """Act on one claim given its pod as last seen (None: gone). `fresh`: that is what a watch
        event said just now. A list may be older than a bind, so before a listed pod's claim is
        released for being gone or unbound, the pod is read again under the pod's bind lock."""
        if not fresh and (pod is None or not pods.node_name(pod)):
            with self.claims.binding(pod_uid_of(claim)):  # waits for a bind of this pod to finish
                known, pod = self._read_again(claim)
                if not known:
                    return
                self._converge_now(claim, pod, fresh=False)
            return
        self._converge_now(claim, pod, fresh)

    def _converge_now(self, claim: Claim, pod: Pod | None, fresh: bool) -> None:
        uid = pod_uid_of(claim)
        if pod is None:
            self._release(claim, "pod deleted")
        elif pods.is_terminal(pod):
            self._release(claim, f"pod {pods.phase(pod)}")
        elif not pods.node_name(pod):
            if not fresh:  # read again, with no bind running: the bind was cut short
                self._release(claim, "pod was never bound (bind interrupted)")
        elif claim.preempting and not pods.is_deleting(pod) and uid not in self._evicted:
            self._evict(claim, pod)
        elif claim.bindings and pods.node_name(pod) != bound_node(claim):
            where = f"pod runs on {pods.node_name(pod)} but its claim {claim.id} is on {bound_node(claim)}"
            self._report(pod, where)

    def _check_claimed(self, pod: Pod, claim: Claim | None) -> None:
        """A pod gpupool bound must have its active claim; report (once) when it does not."""
        claim_id = pods.annotations_of(pod).get(keys.BOUND_CLAIM)
        ending = pods.is_terminal(pod) or pods.is_deleting(pod)  # e.g. evicted after its preemption
        if not claim_id or not pods.node_name(pod) or ending or claim is not None:
            return
        self._report(pod, f"pod was bound by gpupool with claim {claim_id}, which is no longer active")

    # -------------------------------------------------------------- actions
    def _release(self, claim: Claim, reason: str) -> None:
        log.info("releasing claim %s of pod %s: %s", claim.id, claim.spec.labels.get(keys.LABEL_POD), reason)
        self.claims.release(claim, reason)
        self._evicted.discard(pod_uid_of(claim))

    def _read_again(self, claim: Claim) -> tuple[bool, Pod | None]:
        """(known, the claim's pod as it is now or None when gone); known is False when the API
        server could not say, and then nothing must change."""
        current = self.claims.for_pod(pod_uid_of(claim))
        if current is None or current.id != claim.id:
            return False, None  # released or replaced meanwhile
        namespace, _, name = claim.spec.labels.get(keys.LABEL_POD, "").partition("/")
        try:
            found = self.api.get_pod(namespace, name)
        except KubeApiError as exc:
            log.warning("cannot read pod %s/%s: %s", namespace, name, exc.message)
            return False, None
        if found is not None and pods.uid(found) != pod_uid_of(claim):
            return True, None  # a new pod under the same name
        return True, found

    def _evict(self, claim: Claim, pod: Pod) -> None:
        grace = max(0, int((claim.preempt_deadline or self.clock()) - self.clock()))
        try:
            self.api.evict(pods.namespace(pod), pods.name(pod), grace)
        except KubeApiError as exc:
            if exc.status == 404:
                self._release(claim, "pod deleted")
            else:  # 429: a PodDisruptionBudget says not now; the next tick asks again
                log.info("eviction of %s refused: %s", pods.key(pod), exc.message)
            return
        self._evicted.add(pods.uid(pod))
        message = f"gpupool preempted claim {claim.id}: {claim.reason}; evicted with {grace} s grace"
        self.claims.pool.store.add_event(
            ACTOR, "kube.pod.evicted", claim.id, claim.tenant, {"pod": pods.key(pod)}
        )
        self._pod_event(pod, "Preempted", message, warning=True)

    def _report(self, pod: Pod, problem: str) -> None:
        uid = pods.uid(pod)
        if uid in self._reported:
            return
        self._reported.add(uid)
        log.warning("%s: %s", pods.key(pod), problem)
        details = {"pod": pods.key(pod), "node": pods.node_name(pod), "problem": problem}
        self.claims.pool.store.add_event(
            ACTOR, "kube.pod.unclaimed", tenant=pods.namespace(pod), details=details
        )
        self._pod_event(pod, "GpupoolClaimMissing", problem, warning=True)

    def _pod_event(self, pod: Pod, reason: str, message: str, warning: bool) -> None:
        try:
            self.api.record_event(pod, reason, message, warning=warning)
        except KubeApiError as exc:
            log.info("cannot record an event on %s: %s", pods.key(pod), exc.message)

    # ----------------------------------------------------------------- tick
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _tick_loop(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.tick()
            except Exception:
                log.exception("kube controller tick failed")

    def tick(self) -> None:
        """Evict the pods of newly preempted claims, end overdue preemptions, requeue on freed room."""
        pool = self.claims.pool
        preempting = pool.store.preempting_claims()
        if preempting:
            with self._lock:
                for claim in preempting:
                    uid = pod_uid_of(claim)
                    pod = self._pods.get(uid)
                    if uid and pod is not None and uid not in self._evicted and not pods.is_deleting(pod):
                        self._evict(claim, pod)
            if any((c.preempt_deadline or 0.0) <= self.clock() for c in preempting):
                pool.schedule()  # ends claims past their grace period
        allocations = pool.store.device_allocations()
        freed = self._allocations is not None and any(
            allocations.get(uuid, (0, 0)) < held for uuid, held in self._allocations.items()
        )
        self._allocations = allocations
        if freed:
            self._requeue_waiting()

    def _requeue_waiting(self) -> None:
        """Touch Pending vGPU pods: kube-scheduler moves an updated unschedulable pod back to its
        active queue, so a pod that waits for room tries again as soon as room frees up."""
        with self._lock:
            waiting = [p for p in self._pods.values() if pods.waiting_for_node(p) and pods.wants_vgpu(p)]
        stamp = f"{self.clock():.3f}"
        for pod in waiting:
            try:
                self.api.patch_annotations("pods", pods.name(pod), {keys.REQUEUE: stamp}, pods.namespace(pod))
            except KubeApiError as exc:
                log.debug("cannot requeue %s: %s", pods.key(pod), exc.message)


def _ours(pod: Pod) -> bool:
    """Pods the controller keeps: those that ask for vGPUs or that gpupool bound."""
    return pods.wants_vgpu(pod) or keys.BOUND_CLAIM in pods.annotations_of(pod)
