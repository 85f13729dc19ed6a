"""gpupool restarted in the middle of Kubernetes work: nothing lost, nothing double-booked.

The pod controller is level-triggered: after a restart it lists the pods and converges the
claims to them (claims of pods that are gone or never got bound are released; pods bound by
gpupool without an active claim are reported).
"""

from __future__ import annotations

import random
import threading
import time

from controlplane import wait_for
from kubeenv import KubeEnv, check_no_overcommit, check_pods_match_claims

from gpupool.model import Binding, ClaimSpec, ClaimState, GiB
from gpupool.store import Store

# About 6 of the 8 GPUs: every pod fits once gpupool is back.
SIZES = [
    *[{} for _ in range(2)],
    *[{"gpupool.io/memory": "30GiB"} for _ in range(5)],
    *[{"gpupool.io/memory": "10GiB", "gpupool.io/compute": "25"} for _ in range(5)],
    *[{"gpupool.io/compute": "25"} for _ in range(4)],
]


def test_kill9_during_a_burst_loses_and_double_books_nothing(kube_env: KubeEnv, namespace: str) -> None:
    """Pods keep coming (one every 50 ms) while gpupool is killed with SIGKILL and started again;
    creations refused meanwhile (the webhook fails closed) are retried, as a controller would."""
    from kubernetes.client import ApiException

    kube = kube_env.kube
    group, _nodes = kube_env.node_group(["4xH100-80GB", "4xH100-80GB"])
    sizes = list(SIZES)
    random.Random(11).shuffle(sizes)
    names = [f"p{i}" for i in range(len(sizes))]
    refused: list[str] = []

    def create_all() -> None:
        for name, size in zip(names, sizes, strict=True):
            while True:
                try:
                    kube.create_pod(namespace, name, group, annotations=size)
                    break
                except ApiException as exc:  # gpupool's webhook is down
                    refused.append(f"{name}: {exc.status}")
                    time.sleep(0.2)
            time.sleep(0.05)

    creator = threading.Thread(target=create_all)
    creator.start()
    try:
        wait_for(
            "a few pods bound",
            lambda: sum(bool(p["spec"].get("nodeName")) for p in kube.pods(namespace)) >= 3,
            timeout_s=60,
            every_s=0.05,
        )
        kube_env.server.kill9()
        state = kube.pods(namespace)
        created, bound = len(state), sum(bool(p["spec"].get("nodeName")) for p in state)
        kube_env.server.start(timeout_s=60)
    finally:
        creator.join(timeout=120)
    print(f"killed at {created} of {len(names)} pods created, {bound} bound; {len(refused)} refused")
    assert bound < len(names)  # the kill came in the middle
    for name in names:
        kube.wait_bound(namespace, name, timeout_s=120)
    claims = check_pods_match_claims(kube_env, namespace)
    assert len(claims) == len(names)
    check_no_overcommit(kube_env)
    mine = [c for c in kube_env.gpupool.claims("pending,bound") if c["tenant"] == namespace]
    assert len(mine) == len(names), "a claim without a pod, or two claims for one pod"


def test_restart_converges_claims_to_pods(kube_env: KubeEnv, namespace: str) -> None:
    """Each state a crash can leave, made while gpupool is down, is repaired at restart."""
    kube, gpupool = kube_env.kube, kube_env.gpupool
    group, (node,) = kube_env.node_group(["2xH100-80GB"])
    for name in ("kept", "deleted-while-down", "claim-lost"):
        kube.create_pod(namespace, name, group, annotations={"gpupool.io/memory": "20GiB"})
    for name in ("kept", "deleted-while-down", "claim-lost"):
        kube.wait_bound(namespace, name)
    # Pending for good (no node matches), so kube-scheduler never asks gpupool about it.
    kube.create_pod(namespace, "unbound", "no-such-group", annotations={"gpupool.io/memory": "10GiB"})
    uids = {p["metadata"]["name"]: p["metadata"]["uid"] for p in kube.pods(namespace)}
    before = gpupool.pod_claims("bound")
    roomiest = max(
        (d for d in gpupool.devices() if d["node"] == node),
        key=lambda d: d["memory_total_bytes"] - d["memory_allocated_bytes"],
    )

    kube_env.server.kill9()
    kube.delete_pod(namespace, "deleted-while-down")  # its claim outlives it in the store
    store = Store(kube_env.server.home / "pool.db")
    try:
        # The pod's claim is gone while the pod still runs on its devices.
        store.end_claim(before[uids["claim-lost"]]["id"], ClaimState.RELEASED, reason="test: lost")
        # A bind cut short by the crash: the claim recorded, the pod's Binding never written.
        labels = {"gpupool.io/origin": "kubernetes", "gpupool.io/pod": f"{namespace}/unbound"}
        labels["gpupool.io/pod-uid"] = uids["unbound"]
        spec = ClaimSpec(memory_bytes=10 * GiB, labels=labels)
        binding = Binding(roomiest["uuid"], node, 10 * GiB, 13, roomiest["index"])
        interrupted = store.add_claim(namespace, spec, "", "kubernetes", placement=[binding])
    finally:
        store.close()
    kube_env.server.start(timeout_s=60)

    def converged() -> bool:
        active = gpupool.pod_claims()
        unclaimed = {e["details"]["pod"] for e in gpupool.events("kube.pod.unclaimed")}
        return (
            uids["deleted-while-down"] not in active
            and uids["unbound"] not in active
            and f"{namespace}/claim-lost" in unclaimed
        )

    wait_for("the restart's reconcile", converged, timeout_s=30)
    released = {c["id"]: c for c in gpupool.claims("released")}
    assert released[interrupted.id]["reason"] == "pod was never bound (bind interrupted)"
    assert released[before[uids["deleted-while-down"]]["id"]]["reason"] == "pod deleted"
    active = gpupool.pod_claims()
    assert active[uids["kept"]]["id"] == before[uids["kept"]]["id"]  # untouched
    # The pod's event is recorded after the audit event the reconcile was seen by.
    wait_for(
        "the pod's GpupoolClaimMissing event",
        lambda: "GpupoolClaimMissing" in [e["reason"] for e in kube.events(namespace, "claim-lost")],
        timeout_s=10,
    )
    check_no_overcommit(kube_env)
