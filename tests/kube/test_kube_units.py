"""The Kubernetes adapter's translations on their own (no control plane): the pod's request, the
webhook's answer, the extender's scores, the node inventory and the certificates."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from gpupool.errors import InvalidRequest
from gpupool.kube import keys, pods, webhook
from gpupool.kube.certs import write_certs
from gpupool.kube.extender import extender_score
from gpupool.kube.inventory import KubeNodeBackend, devices_annotation, devices_from_annotation
from gpupool.model import ClaimSpec, Device, GiB
from gpupool.scheduler import NodeVerdict

Obj = dict[str, Any]


def pod(annotations: dict[str, str] | None = None, *counts: str | None, init: str | None = None) -> Obj:
    def container(i: int, count: str | None) -> Obj:
        found: Obj = {"name": f"c{i}", "image": "x", "env": [{"name": "MINE", "value": "1"}]}
        if count is not None:
            found["resources"] = {"limits": {keys.RESOURCE: count}}
        return found

    spec: Obj = {"containers": [container(i, c) for i, c in enumerate(counts or ("1",))]}
    if init is not None:
        spec["initContainers"] = [container(9, init)]
    return {"metadata": {"name": "p", "namespace": "ns", "annotations": annotations or {}}, "spec": spec}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (pod(), ClaimSpec()),
        (pod({}, "2"), ClaimSpec(gpus=2)),
        (pod({}, "1", "1", None), ClaimSpec(gpus=2)),
        (pod({}, "1", init="3"), ClaimSpec(gpus=3)),
        (
            pod({"gpupool.io/memory": "10GiB", "gpupool.io/compute": "25%"}),
            ClaimSpec(memory_bytes=10 * GiB, compute_percent=25),
        ),
        (pod({"gpupool.io/model": " H100* "}), ClaimSpec(model="H100*")),
        (
            pod({"gpupool.io/priority": "-5", "gpupool.io/preemptible": "True"}),
            ClaimSpec(priority=-5, preemptible=True),
        ),
        (pod({}, None), None),
    ],
    ids=["whole", "two", "two-containers", "init-container-max", "fraction", "model", "priority", "no-vgpu"],
)
def test_claim_spec(given: Obj, expected: ClaimSpec | None) -> None:
    assert pods.claim_spec(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        (pod({"gpupool.io/memory": "ten"}), "annotation gpupool.io/memory: cannot parse size 'ten'"),
        (pod({"gpupool.io/compute": "0"}), "annotation gpupool.io/compute: must be a whole percentage"),
        (pod({"gpupool.io/model": "H100; rm"}), "annotation gpupool.io/model: 'H100; rm' is not a model"),
        (pod({"gpupool.io/priority": "5000"}), "annotation gpupool.io/priority: must be a whole number in"),
        (pod({"gpupool.io/preemptible": "yes"}), "annotation gpupool.io/preemptible: must be 'true' or"),
        (pod({"gpupool.io/memory": "1" * 200}), "annotation gpupool.io/memory: at most 128 characters"),
        (pod({}, "500m"), "container c0: gpupool.io/vgpu must be a whole number of vGPUs, got '500m'"),
        (pod({}, "65"), "gpupool.io/vgpu: at most 64 vGPUs per pod"),
        (
            pod({"gpupool.io/memory": "1GiB"}, None),
            "annotation gpupool.io/memory is set but no container asks",
        ),
    ],
    ids=["memory", "compute", "model", "priority", "preemptible", "long", "milli", "too-many", "orphan-note"],
)
def test_claim_spec_refuses_with_the_annotation_named(given: Obj, message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        pods.claim_spec(given)
    assert message in refused.value.message


def _review(obj: Obj, kind: str = "Pod", operation: str = "CREATE") -> Obj:
    return {"request": {"uid": "u-1", "kind": {"kind": kind}, "operation": operation, "object": obj}}


def _patch(answer: Obj) -> list[Obj]:
    return list(json.loads(base64.b64decode(answer["response"]["patch"])))


def test_webhook_gives_fractional_pods_the_claims_environment() -> None:
    given = pod({"gpupool.io/memory": "10GiB"}, "1", None)
    given["spec"]["containers"][0]["env"].append({"name": "CUDA_VISIBLE_DEVICES", "value": "0,1,2"})
    answer = webhook.review(_review(given), scheduler_name="gpupool-scheduler")
    assert answer["response"]["allowed"] and answer["response"]["uid"] == "u-1"
    ops = _patch(answer)
    by_path = {op["path"]: op["value"] for op in ops}
    assert by_path["/spec/schedulerName"] == "gpupool-scheduler"
    for index in (0, 1):  # every container, also those that ask for nothing themselves
        env = {e["name"]: e for e in by_path[f"/spec/containers/{index}/env"]}
        assert env["MINE"] == {"name": "MINE", "value": "1"}
        ref = env["CUDA_VISIBLE_DEVICES"]["valueFrom"]["fieldRef"]["fieldPath"]
        assert ref == "metadata.annotations['gpupool.io/visible-devices']"  # the user's value is replaced
        assert "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT" in env
        assert env["CUDA_DEVICE_ORDER"]["value"] == "PCI_BUS_ID"
    # Called again on the pod it patched (reinvocation): nothing is refused, the result is the same.
    for op in ops:
        if op["path"].endswith("/env"):
            index = int(op["path"].split("/")[3])
            given["spec"]["containers"][index]["env"] = op["value"]
    again = webhook.review(_review(given), scheduler_name="gpupool-scheduler")
    assert again["response"]["allowed"]
    assert [op for op in _patch(again) if op["path"].endswith("/env")] == [
        op for op in ops if op["path"].endswith("/env")
    ]


def test_webhook_whole_gpus_get_no_mps_limits() -> None:
    env = {e["name"] for e in _patch(webhook.review(_review(pod())))[0]["value"]}
    assert "CUDA_VISIBLE_DEVICES" in env and not env & keys.FRACTION_ONLY_ENV


@pytest.mark.parametrize(
    ("body", "allowed"),
    [
        (_review(pod({}, None)), True),
        (_review(pod({"gpupool.io/compute": "300"})), False),
        (_review(pod({"gpupool.io/compute": "300"}), operation="UPDATE"), True),
        (_review({"metadata": {}}, kind="Service"), True),
    ],
    ids=["plain-pod", "bad-annotation", "update", "not-a-pod"],
)
def test_webhook_only_judges_pod_creation(body: Obj, allowed: bool) -> None:
    answer = webhook.review(body)["response"]
    assert answer["allowed"] is allowed
    assert "patch" not in answer
    if not allowed:
        assert answer["status"]["message"].startswith("gpupool: annotation gpupool.io/compute")


@pytest.mark.parametrize(("value", "allowed"), [("all", False), ("0", False), ("void", True), ("", True)])
def test_webhook_refuses_pods_that_pick_their_own_gpus(value: str, allowed: bool) -> None:
    given = pod({}, None)
    given["spec"]["containers"][0]["env"].append({"name": "NVIDIA_VISIBLE_DEVICES", "value": value})
    assert webhook.review(_review(given))["response"]["allowed"] is allowed


def test_webhook_refuses_what_is_not_a_review() -> None:
    with pytest.raises(InvalidRequest):
        webhook.review({"kind": "AdmissionReview"})


def test_extender_scores_follow_gpupools_pick() -> None:
    verdicts = [
        NodeVerdict("a", True, score=5.0),
        NodeVerdict("b", True, score=9.0, best=True),
        NodeVerdict("c", True, score=1.0),
        NodeVerdict("d", False, "full"),
    ]
    assert [extender_score(v, verdicts) for v in verdicts] == [4, 10, 0, 0]
    tied = [NodeVerdict("a", True, score=2.0, best=True), NodeVerdict("b", True, score=2.0)]
    assert [extender_score(v, tied) for v in tied] == [10, 9]  # a tie still follows gpupool's choice


def _node(name: str, annotations: dict[str, str]) -> Obj:
    return {"metadata": {"name": name, "annotations": annotations}}


def test_inventory_from_node_annotations() -> None:
    reported = [Device("GPU-1", "x", 0, "A100-80GB", 80 * GiB, sm_count=108, nvlink_peers=("GPU-2",))]
    backend = KubeNodeBackend()
    changed = backend.sync(
        [
            _node("sim", {keys.NODE_SIMULATE: "2xH100-80GB"}),
            _node("real", {keys.NODE_DEVICES: devices_annotation(reported)}),
            _node("broken", {keys.NODE_SIMULATE: "2xNoSuchGPU"}),
            _node("cpu", {}),
        ]
    )
    assert changed
    devices = backend.devices()
    assert [(d.node, d.model) for d in devices] == [
        ("real", "A100-80GB"),
        ("sim", "H100-80GB"),
        ("sim", "H100-80GB"),
    ]
    assert devices[0].nvlink_peers == ("GPU-2",) and devices[0].sm_count == 108
    assert "broken" in backend.problems() and "NoSuchGPU" in backend.problems()["broken"]
    # Unchanged annotations keep the same devices; a change or a removal is reported as such.
    assert not backend.update(_node("sim", {keys.NODE_SIMULATE: "2xH100-80GB", "other": "x"}))
    assert backend.update(_node("sim", {keys.NODE_SIMULATE: "4xH100-80GB"}))
    assert len([d for d in backend.devices() if d.node == "sim"]) == 4
    assert backend.remove("real") and not backend.remove("cpu")
    backend.note_allocations({devices[1].uuid: (40 * GiB, 50)})
    assert {t.uuid for t in backend.telemetry()} == {d.uuid for d in backend.devices()}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "annotation gpupool.io/devices"),
        ('[{"uuid": "GPU-1", "index": 0, "model": "X", "memory_total_bytes": -1}]', "memory_total_bytes"),
        ('[{"uuid": "a b", "index": 0, "model": "X", "memory_total_bytes": 1}]', "uuid"),
        ('[{"uuid": "G", "index": 0, "model": "X", "memory_total_bytes": 1}]', ""),
    ],
    ids=["not-json", "negative-memory", "bad-uuid", "fine"],
)
def test_reported_devices_are_checked(text: str, problem: str) -> None:
    if not problem:
        assert devices_from_annotation("n", text)[0].node == "n"
        return
    with pytest.raises(InvalidRequest, match=problem):
        devices_from_annotation("n", text)


def test_certs_serve_the_hosts_and_keep_the_ca(tmp_path: Path) -> None:
    from cryptography import x509

    first = write_certs(tmp_path, ["127.0.0.1", "gpupool.gpupool.svc"])
    ca = first.ca_cert.read_bytes()
    cert = x509.load_pem_x509_certificate(first.cert.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["gpupool.gpupool.svc"]
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca))
    assert first.key.stat().st_mode & 0o777 == 0o600
    second = write_certs(tmp_path, ["localhost"])
    assert second.ca_cert.read_bytes() == ca  # reissued under the same CA: caBundles stay valid


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--kube", "{cfg}"],
            "--kube-tls-cert: required with --kube (make a pair with `gpupool kube certs`)",
        ),
        (
            ["--kube", "{tmp}/none.yaml", "--kube-tls-cert", "{cfg}", "--kube-tls-key", "{cfg}"],
            "no kubeconfig",
        ),
        (["--kube", "{cfg}", "--simulate", "1x1xH100-80GB"], "--simulate: not with --kube"),
        (
            ["--kube", "{cfg}", "--kube-tls-cert", "{cfg}", "--kube-tls-key", "{cfg}"],
            "API server https://127.0.0.1:1 unreachable",
        ),
    ],
    ids=["no-certs", "no-kubeconfig", "with-simulate", "unreachable"],
)
def test_serve_kube_refuses_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    import subprocess
    import sys

    from serverctl import free_port

    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
        "current-context: x\n"
    )
    argv = [a.format(cfg=config, tmp=tmp_path) for a in args]
    port = str(free_port())
    command = [
        sys.executable,
        "-m",
        "gpupool",
        "serve",
        "--port",
        port,
        "--db",
        str(tmp_path / "p.db"),
        *argv,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("gpupool: error: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
