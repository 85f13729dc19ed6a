"""kube-scheduler's extender protocol (filter, prioritize, bind), as thin translations to pool calls.

- filter: `PoolService.assess_nodes` -> the nodes where the pod's claim fits now; every other node
  gets gpupool's reason, which kube-scheduler puts in the pod's FailedScheduling event.
- prioritize: the policy's node scores mapped onto 0..10; the node gpupool itself would take gets
  10 and every other at most 9, so kube-scheduler follows gpupool's choice.
- bind: `PoolService.claim_on_node` records the claim bound on the chosen node, then one Binding
  writes the node and the claim's annotations onto the pod. All or nothing: if the Binding fails
  the claim is released; a crash in between is undone by the pod controller's resync.

JSON keys are kube-scheduler's Go field names (`Pod`, `NodeNames`, `FailedNodes`, ...). With
`nodeCacheCapable: true` the scheduler sends node names only, which keeps requests small.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

from gpupool.errors import CapacityError, InvalidRequest
from gpupool.kube import keys, pods
from gpupool.kube.apiclient import KubeApi, KubeApiError
from gpupool.kube.claims import PodClaims, bound_annotations, bound_node
from gpupool.model import Claim, ClaimSpec, Tenant
from gpupool.pool import PoolService
from gpupool.scheduler import NodeVerdict

log = logging.getLogger("gpupool.kube")

MAX_EXTENDER_SCORE = 10  # kube-scheduler's extender scores are 0..10
REASON_PREFIX = "gpupool: "
MAX_REMEMBERED = 10_000  # pods whose last filter is remembered (for prioritize and the audit trail)
REUSE_S = 2.0
"""prioritize follows filter within milliseconds in one scheduling cycle: within this many seconds
it reuses filter's assessment instead of ranking the same nodes again."""


class Extender:
    """Answers kube-scheduler's extender calls for one pool."""

    def __init__(self, pool: PoolService, api: KubeApi, claims: PodClaims) -> None:
        self.pool = pool
        self.api = api
        self.claims = claims
        self._assessed: OrderedDict[str, _Assessed] = OrderedDict()  # pod UID -> its last filter
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ filter
    def filter(self, args: dict[str, Any]) -> dict[str, Any]:
        pod = _pod(args)
        names = _node_names(args)
        try:
            spec = pods.claim_spec(pod)
        except InvalidRequest as exc:
            return _filter_answer(args, [], {name: REASON_PREFIX + exc.message for name in names})
        if spec is None:  # not ours to judge
            return _filter_answer(args, names, {})
        uid = pods.uid(pod)
        verdicts = self._verdicts(pod, spec, names)
        keep = [v.node for v in verdicts if v.fits]
        failed = {v.node: REASON_PREFIX + v.reason for v in verdicts if not v.fits}
        best = next((v.node for v in verdicts if v.best), "")
        self._remember(uid, _Assessed(time.monotonic(), pod, verdicts))
        if best:
            plan = self.pool.plan_on_node(spec, best, held=self.claims.held(except_uid=uid))
            if plan.ok:
                self.claims.reserve(uid, plan.bindings)
        return _filter_answer(args, keep, failed)

    # -------------------------------------------------------------- prioritize
    def prioritize(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        pod = _pod(args)
        names = _node_names(args)
        try:
            spec = pods.claim_spec(pod)
        except InvalidRequest:
            spec = None
        if spec is None:
            return [{"Host": name, "Score": 0} for name in names]
        verdicts = self._recalled(pods.uid(pod), names)
        if verdicts is None:
            verdicts = self._verdicts(pod, spec, names)
        return [{"Host": v.node, "Score": extender_score(v, verdicts)} for v in verdicts]

    def _verdicts(self, pod: pods.Pod, spec: ClaimSpec, names: list[str]) -> list[NodeVerdict]:
        existing = self.claims.for_pod(pods.uid(pod))
        if existing is not None and existing.bindings:
            # A bind that did not finish (kube-scheduler retries it): only that node will do.
            node = bound_node(existing)
            why = f"this pod's claim {existing.id} is bound on node {node}"
            return [NodeVerdict(n, n == node, "" if n == node else why, best=n == node) for n in names]
        held = self.claims.held(except_uid=pods.uid(pod))
        return self.pool.assess_nodes(pods.namespace(pod), spec, names, held=held)

    # -------------------------------------------------------------------- bind
    def bind(self, args: dict[str, Any]) -> dict[str, Any]:
        namespace = str(args.get("PodNamespace") or "")
        name = str(args.get("PodName") or "")
        uid = str(args.get("PodUID") or "")
        node = str(args.get("Node") or "")
        if not (namespace and name and uid and node):
            return {"Error": "gpupool: a bind needs PodNamespace, PodName, PodUID and Node"}
        try:
            self._bind(namespace, name, uid, node)
        except (CapacityError, InvalidRequest, KubeApiError) as exc:
            log.info("bind of %s/%s on %s refused: %s", namespace, name, node, exc.message)
            return {"Error": REASON_PREFIX + exc.message}
        return {"Error": ""}

    def _bind(self, namespace: str, name: str, uid: str, node: str) -> None:
        assessed = self._forget(uid)
        # The pod as filter saw it (this scheduling cycle's), else as the API server has it now.
        pod = assessed.pod if assessed is not None else self.api.get_pod(namespace, name)
        if pod is None or pods.uid(pod) != uid:
            raise InvalidRequest(f"pod {namespace}/{name} ({uid}) no longer exists")
        spec = pods.claim_spec(pod)
        if spec is None:  # kube-scheduler sends only pods with a managed resource; bind it anyway
            self.api.bind(namespace, name, uid, node, {})
            return
        labels = pods.claim_labels(pod)
        preferred = next((v.node for v in assessed.verdicts if v.best), "") if assessed else ""
        if preferred:  # where gpupool wanted it, for the record (kube-scheduler may weigh otherwise)
            labels[keys.LABEL_PREFERRED_NODE] = preferred
        spec = replace(spec, labels=labels)
        with self.claims.binding(uid):
            try:
                claim, created = self._claim_for(pod, spec, node)
            finally:
                self.claims.unreserve(uid)  # recorded now, or refused: either way no longer planned
            try:
                self.api.bind(namespace, name, uid, node, bound_annotations(claim))
            except KubeApiError as exc:
                if self._already_bound(namespace, name, node, claim):
                    return  # a retried bind whose first try got through
                if created:
                    self.claims.release(claim, f"binding the pod failed: {exc.message}")
                raise

    def _claim_for(self, pod: pods.Pod, spec: ClaimSpec, node: str) -> tuple[Claim, bool]:
        """The pod's claim bound on `node`: the one a retried bind left, or a new one."""
        existing = self.claims.for_pod(pods.uid(pod))
        if existing is not None:
            if existing.bindings and bound_node(existing) == node:
                return existing, False
            self.claims.release(existing, f"kube-scheduler chose node {node} instead")
        tenant = Tenant(name=pods.namespace(pod))
        held = self.claims.held(except_uid=pods.uid(pod))
        return self.claims.create(tenant, spec, node, held), True

    def _already_bound(self, namespace: str, name: str, node: str, claim: Claim) -> bool:
        try:
            pod = self.api.get_pod(namespace, name)
        except KubeApiError:
            return False
        return (
            pod is not None
            and pods.node_name(pod) == node
            and pods.annotations_of(pod).get(keys.BOUND_CLAIM) == claim.id
        )

    # ----------------------------------------------------------------- helpers
    def _remember(self, uid: str, assessed: _Assessed) -> None:
        with self._lock:
            self._assessed[uid] = assessed
            self._assessed.move_to_end(uid)
            while len(self._assessed) > MAX_REMEMBERED:
                self._assessed.popitem(last=False)

    def _recalled(self, uid: str, names: list[str]) -> list[NodeVerdict] | None:
        """The last filter's verdicts for exactly these nodes, if recent enough (else None)."""
        with self._lock:
            assessed = self._assessed.get(uid)
        if assessed is None or time.monotonic() - assessed.at > REUSE_S:
            return None
        by_node = {v.node: v for v in assessed.verdicts}
        if not set(names) <= by_node.keys():
            return None
        return [by_node[name] for name in names]

    def _forget(self, uid: str) -> _Assessed | None:
        """The pod's last filter (if remembered), forgotten: its bind has come."""
        with self._lock:
            return self._assessed.pop(uid, None)


@dataclass(frozen=True)
class _Assessed:
    at: float  # time.monotonic() of the filter call
    pod: pods.Pod
    verdicts: list[NodeVerdict]


def extender_score(verdict: NodeVerdict, verdicts: list[NodeVerdict]) -> int:
    """0..10: the node gpupool would take scores 10, the other fitting nodes 0..9 by the policy's
    score (linear between the lowest and the highest), nodes that do not fit 0."""
    if not verdict.fits:
        return 0
    if verdict.best:
        return MAX_EXTENDER_SCORE
    scores = [v.score for v in verdicts if v.fits]
    low, high = min(scores), max(scores)
    if high <= low:
        return MAX_EXTENDER_SCORE - 1
    return int((MAX_EXTENDER_SCORE - 1) * (verdict.score - low) / (high - low))


def _pod(args: dict[str, Any]) -> pods.Pod:
    pod = args.get("Pod")
    if not isinstance(pod, dict):
        raise InvalidRequest("extender arguments: no Pod")
    return pod


def _node_names(args: dict[str, Any]) -> list[str]:
    names = args.get("NodeNames")
    if isinstance(names, list):
        return [str(n) for n in names]
    items = (args.get("Nodes") or {}).get("items") or []
    return [str((n.get("metadata") or {}).get("name", "")) for n in items]


def _filter_answer(args: dict[str, Any], keep: list[str], failed: dict[str, str]) -> dict[str, Any]:
    """With `nodeCacheCapable` the scheduler wants names back; otherwise the Node objects."""
    nodes = args.get("Nodes")
    if isinstance(args.get("NodeNames"), list) or not isinstance(nodes, dict):
        return {"Nodes": None, "NodeNames": keep, "FailedNodes": failed, "Error": ""}
    kept = set(keep)
    items = [n for n in nodes.get("items") or [] if (n.get("metadata") or {}).get("name") in kept]
    return {"Nodes": dict(nodes, items=items), "NodeNames": None, "FailedNodes": failed, "Error": ""}
