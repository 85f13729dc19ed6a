"""gpupool as Kubernetes' GPU scheduler, against a real kube-apiserver and kube-scheduler v1.20.2.

Pods go through the real admission chain (gpupool's webhook) and the real kube-scheduler, which
asks gpupool (extender) where they fit and lets gpupool bind them; no kubelet, so pods are bound
and never run.
"""

from __future__ import annotations

import fnmatch
import json
import time
from typing import Any

import pytest
from controlplane import wait_for
from kubeenv import KubeEnv, check_no_overcommit, check_pods_match_claims
from kubetest import GiB

Obj = dict[str, Any]

MIXED_NODES = ["4xH100-80GB", "4xH100-80GB", "2xA100-40GB", "4xA100-80GB"]
# (name, vGPUs, annotations): fractional, whole, 2-GPU and model-constrained pods.
MIXED_PODS: list[tuple[str, int, dict[str, str]]] = [
    *[(f"frac-{i}", 1, {"gpupool.io/memory": "10GiB", "gpupool.io/compute": "25"}) for i in range(4)],
    *[(f"mem-{i}", 1, {"gpupool.io/memory": "20GiB"}) for i in range(2)],
    *[(f"half-{i}", 1, {"gpupool.io/compute": "50"}) for i in range(2)],
    *[(f"whole-{i}", 1, {}) for i in range(4)],
    *[(f"pair-{i}", 2, {}) for i in range(2)],
    *[(f"a100-{i}", 1, {"gpupool.io/memory": "16GiB", "gpupool.io/model": "A100*"}) for i in range(2)],
    ("h100-whole", 1, {"gpupool.io/model": "H100*"}),
    ("a100-80", 1, {"gpupool.io/model": "A100-80GB", "gpupool.io/compute": "20"}),
    ("prio", 1, {"gpupool.io/memory": "8GiB", "gpupool.io/priority": "10", "gpupool.io/preemptible": "true"}),
    ("two-containers", 1, {"gpupool.io/memory": "12GiB"}),
]
MPS_ENV = {"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"}


def _annotation_ref(env: Obj) -> str:
    return str(env.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath", ""))


def test_mixed_pods_bind_where_gpupool_chose(kube_env: KubeEnv, namespace: str) -> None:
    kube = kube_env.kube
    group, _nodes = kube_env.node_group(MIXED_NODES)
    for name, vgpus, notes in MIXED_PODS:
        kube.create_pod(namespace, name, group, vgpus, notes, containers=2 if name == "two-containers" else 1)
    assert len(MIXED_PODS) == 20
    for name, _vgpus, _notes in MIXED_PODS:
        kube.wait_bound(namespace, name, timeout_s=120)
    claims = check_pods_match_claims(kube_env, namespace)
    assert len(claims) == 20
    check_no_overcommit(kube_env)

    devices = {d["uuid"]: d for d in kube_env.gpupool.devices()}
    for name, vgpus, notes in MIXED_PODS:
        pod = kube.pod(namespace, name)
        assert pod is not None
        claim = claims[name]
        # kube-scheduler took the node gpupool's policy ranked first among those its own filters passed
        assert claim["labels"]["gpupool.io/preferred-node"] == pod["spec"]["nodeName"], name
        assert len(claim["bindings"]) == vgpus
        models = {devices[b["device_uuid"]]["model"] for b in claim["bindings"]}
        if "gpupool.io/model" in notes:
            assert all(fnmatch.fnmatch(m.lower(), notes["gpupool.io/model"].lower()) for m in models)
        if "gpupool.io/memory" in notes:
            want = int(notes["gpupool.io/memory"].removesuffix("GiB")) * GiB
            assert all(b["memory_bytes"] == want for b in claim["bindings"])
        if "gpupool.io/compute" in notes:
            assert all(b["compute_percent"] == int(notes["gpupool.io/compute"]) for b in claim["bindings"])
        fractional = bool(notes.keys() & {"gpupool.io/memory", "gpupool.io/compute"})
        assert claim["priority"] == int(notes.get("gpupool.io/priority", "0"))
        assert claim["preemptible"] == (notes.get("gpupool.io/preemptible") == "true")
        assert all(b["whole_device"] != fractional for b in claim["bindings"])
        # Every container reads the claim's environment from the annotations gpupool wrote at bind.
        annotations = pod["metadata"]["annotations"]
        for container in pod["spec"]["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert env["USER_SETTING"]["value"] == "kept"
            for var in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES"):
                assert _annotation_ref(env[var]) == "metadata.annotations['gpupool.io/visible-devices']"
            assert env["CUDA_DEVICE_ORDER"]["value"] == "PCI_BUS_ID"
            assert (env.keys() >= MPS_ENV) == fractional
            for var in MPS_ENV & env.keys():
                key = _annotation_ref(env[var]).split("'")[1]
                assert annotations[key], (name, var)
        if fractional:
            threads = str(min(b["compute_percent"] for b in claim["bindings"]))
            assert annotations["gpupool.io/mps-active-thread-percentage"] == threads
        assert claim["env"]["CUDA_VISIBLE_DEVICES"] == annotations["gpupool.io/visible-devices"]

    # The dashboard's snapshot names each claim's pod (the namespace's tenant need not exist).
    with kube_env.gpupool.http() as http:
        overview = http.get("/v1/overview")
    assert overview.status_code == 200
    shown = {c["labels"].get("gpupool.io/pod") for c in overview.json()["claims"]}
    assert {f"{namespace}/{name}" for name, _v, _n in MIXED_PODS} <= shown

    # Deleting a pod releases its claim within 5 s.
    victim = claims["pair-0"]
    started = time.monotonic()
    kube.delete_pod(namespace, "pair-0")
    wait_for(
        "the deleted pod's claim to be released",
        lambda: victim["id"] not in {c["id"] for c in kube_env.gpupool.claims("pending,bound")},
        timeout_s=5,
        every_s=0.05,
    )
    released_after = time.monotonic() - started
    print(f"claim released {released_after:.2f} s after the pod was deleted")
    (ended,) = [c for c in kube_env.gpupool.claims("released") if c["id"] == victim["id"]]
    assert ended["reason"] == "pod deleted"
    check_no_overcommit(kube_env)


def test_pod_waits_with_gpupools_reason_then_binds(kube_env: KubeEnv, namespace: str) -> None:
    kube = kube_env.kube
    group, (node,) = kube_env.node_group(["1xH100-80GB"])
    kube.create_pod(namespace, "first", group, annotations={"gpupool.io/memory": "60GiB"})
    kube.wait_bound(namespace, "first")
    kube.create_pod(namespace, "second", group, annotations={"gpupool.io/memory": "40GiB"})

    def failed_scheduling() -> str:
        messages = [e.get("message", "") for e in kube.events(namespace, "second")]
        return next((m for m in messages if "gpupool:" in m), "")

    message = wait_for("FailedScheduling with gpupool's reason", failed_scheduling, timeout_s=30)
    assert "40GiB" in message, message
    pod = kube.pod(namespace, "second")
    assert pod is not None and not pod["spec"].get("nodeName")
    assert pod["status"]["phase"] == "Pending"
    time.sleep(1)
    pod = kube.pod(namespace, "second")
    assert pod is not None and not pod["spec"].get("nodeName"), "bound although it cannot fit"

    started = time.monotonic()
    kube.delete_pod(namespace, "first")
    bound = kube.wait_bound(namespace, "second", timeout_s=30)
    print(f"waiting pod bound {time.monotonic() - started:.2f} s after the other was deleted")
    assert bound["spec"]["nodeName"] == node
    check_pods_match_claims(kube_env, namespace)


def test_namespace_quota_holds(kube_env: KubeEnv, namespace: str) -> None:
    kube, gpupool = kube_env.kube, kube_env.gpupool
    with gpupool.http() as http:
        http.post("/v1/tenants", json={"name": namespace}).raise_for_status()
        http.put(f"/v1/tenants/{namespace}/quota", json={"limit": "2gpu"}).raise_for_status()
    group, _nodes = kube_env.node_group(["4xH100-80GB"])
    for i in range(3):
        kube.create_pod(namespace, f"whole-{i}", group)
    wait_for(
        "two pods bound",
        lambda: sum(bool(p["spec"].get("nodeName")) for p in kube.pods(namespace)) == 2,
        timeout_s=60,
    )
    (waiting,) = [p for p in kube.pods(namespace) if not p["spec"].get("nodeName")]
    name = waiting["metadata"]["name"]
    message = wait_for(
        "FailedScheduling naming the quota",
        lambda: next((e["message"] for e in kube.events(namespace, name) if "quota" in e["message"]), ""),
        timeout_s=30,
    )
    assert "limit" in message and namespace in message, message
    time.sleep(1)
    assert sum(bool(p["spec"].get("nodeName")) for p in kube.pods(namespace)) == 2
    held = [c for c in gpupool.claims("bound") if c["tenant"] == namespace]
    assert sum(c["gpus"] for c in held) == 2
    bound = next(p["metadata"]["name"] for p in kube.pods(namespace) if p["spec"].get("nodeName"))
    kube.delete_pod(namespace, bound)
    kube.wait_bound(namespace, name, timeout_s=30)
    assert sum(c["gpus"] for c in gpupool.claims("bound") if c["tenant"] == namespace) == 2


@pytest.mark.parametrize(
    ("annotations", "env", "expected"),
    [
        ({"gpupool.io/memory": "lots"}, None, "annotation gpupool.io/memory: cannot parse size 'lots'"),
        ({"gpupool.io/compute": "150"}, None, "annotation gpupool.io/compute: must be a whole percentage"),
        ({"gpupool.io/priority": "high"}, None, "annotation gpupool.io/priority: must be a whole number"),
        ({}, {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"}, "sets NVIDIA_VISIBLE_DEVICES"),
    ],
    ids=["memory", "compute", "priority", "own-devices"],
)
def test_malformed_request_denied_at_admission(
    kube_env: KubeEnv, namespace: str, annotations: dict[str, str], env: Obj | None, expected: str
) -> None:
    from kubernetes.client import ApiException

    body: Obj = {
        "metadata": {"name": "bad", "annotations": annotations},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "registry.k8s.io/pause:3.2",
                    "resources": {"limits": {"gpupool.io/vgpu": "1"}},
                    "env": [env] if env else [],
                }
            ]
        },
    }
    with pytest.raises(ApiException) as denied:
        kube_env.kube.core.create_namespaced_pod(namespace, body)
    assert denied.value.status == 400
    message = json.loads(denied.value.body)["message"]  # what kubectl prints
    assert message.startswith('admission webhook "vgpu.gpupool.io" denied the request: gpupool: ')
    assert expected in message
    assert kube_env.kube.pod(namespace, "bad") is None


def test_plain_pods_pass_untouched(kube_env: KubeEnv, namespace: str) -> None:
    """A pod that asks for no vGPU is admitted as it is and scheduled without gpupool."""
    group, _nodes = kube_env.node_group(["1xH100-80GB"])
    kube_env.kube.create_pod(namespace, "cpu-only", group, vgpus=0)
    pod = kube_env.kube.wait_bound(namespace, "cpu-only")
    assert [e["name"] for e in pod["spec"]["containers"][0]["env"]] == ["USER_SETTING"]
    assert "gpupool.io/claim" not in (pod["metadata"].get("annotations") or {})
    assert pod["metadata"]["uid"] not in kube_env.gpupool.pod_claims()


def _one_bound_pod(kube_env: KubeEnv, namespace: str, name: str, annotations: dict[str, str]) -> Obj:
    """A pod alone on a fresh 1-GPU node, bound; returns its claim."""
    group, _nodes = kube_env.node_group(["1xH100-80GB"])
    kube_env.kube.create_pod(namespace, name, group, annotations=annotations)
    uid = kube_env.kube.wait_bound(namespace, name)["metadata"]["uid"]
    return dict(wait_for("its claim", lambda: kube_env.gpupool.pod_claims("bound").get(uid)))


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_finished_pod_releases_its_claim(kube_env: KubeEnv, namespace: str, phase: str) -> None:
    kube = kube_env.kube
    claim = _one_bound_pod(kube_env, namespace, "job", {"gpupool.io/compute": "30"})
    uid = claim["labels"]["gpupool.io/pod-uid"]
    # No kubelet here: report the pod's end as a kubelet would, through the status subresource.
    kube.core.patch_namespaced_pod_status("job", namespace, {"status": {"phase": phase}})
    wait_for(f"the claim of the {phase} pod released", lambda: uid not in kube_env.gpupool.pod_claims(), 5)
    (ended,) = [c for c in kube_env.gpupool.claims("released") if c["labels"]["gpupool.io/pod-uid"] == uid]
    assert ended["reason"] == f"pod {phase}"


def test_preempted_claim_evicts_its_pod(kube_env: KubeEnv, namespace: str) -> None:
    kube = kube_env.kube
    claim = _one_bound_pod(kube_env, namespace, "borrower", {"gpupool.io/preemptible": "true"})
    with kube_env.gpupool.http() as http:
        http.post(f"/v1/claims/{claim['id']}/preempt").raise_for_status()
    evicted = wait_for(
        "the pod evicted",
        lambda: (p := kube.pod(namespace, "borrower")) and p["metadata"].get("deletionTimestamp") and p,
        timeout_s=10,
    )
    grace = evicted["metadata"]["deletionGracePeriodSeconds"]
    assert 0 < grace <= kube_env.preempt_grace_s  # the claim's remaining grace period
    # The controller records the event after the eviction (and the audit event's commit) is done.
    wait_for(
        "the pod's Preempted event",
        lambda: "Preempted" in [e["reason"] for e in kube.events(namespace, "borrower")],
        timeout_s=10,
    )
    # No kubelet to stop it: gpupool ends the claim when the grace period is over.
    wait_for(
        "the claim ended as preempted",
        lambda: any(c["id"] == claim["id"] for c in kube_env.gpupool.claims("preempted")),
        timeout_s=kube_env.preempt_grace_s + 10,
    )


def test_node_agent_reports_devices(kube_env: KubeEnv, namespace: str) -> None:
    """The DaemonSet's command, with its RBAC rights, declares a node's GPUs; pods then land there."""
    import subprocess
    import sys

    kube = kube_env.kube
    group, (node,) = kube_env.node_group(["1xH100-80GB"])
    kube.core.patch_node(node, {"metadata": {"annotations": {"gpupool.io/simulate": None}}})
    wait_for(
        "the node's simulated GPU gone", lambda: node not in {d["node"] for d in kube_env.gpupool.devices()}
    )
    agent = [sys.executable, "-m", "gpupool", "kube", "node-agent", "--once"]
    agent += [
        "--kube",
        str(kube_env.cp.kubeconfig("node-agent")),
        "--node",
        node,
        "--simulate",
        "2xA100-40GB",
    ]
    done = subprocess.run(agent, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wait_for(
        "the reported devices in the pool",
        lambda: [d["model"] for d in kube_env.gpupool.devices() if d["node"] == node] == ["A100-40GB"] * 2,
    )
    kube.create_pod(namespace, "on-reported", group, vgpus=2, annotations={"gpupool.io/model": "A100-40GB"})
    assert kube.wait_bound(namespace, "on-reported")["spec"]["nodeName"] == node
    # A node that does not exist: one line on stderr, exit code 2.
    other = [*agent[:-4], "--node", "no-such-node", "--simulate", "1xH100-80GB"]
    refused = subprocess.run(other, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "gpupool: error:" in refused.stderr
