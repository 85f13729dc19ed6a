"""The whole Kubernetes test environment in one object: a real control plane, gpupool serving it
(`serve --kube`, with deploy/kubernetes/rbac.yaml's rights), its webhook registered and a
kube-scheduler with gpupool as its extender. Used by the tests and by benchmarks/kube_bench.py."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from controlplane import REPO_ROOT, ControlPlane, wait_for
from kubetest import Gpupool, Kube, Obj

from serverctl import ServerProcess, free_port

DEPLOY = REPO_ROOT / "deploy" / "kubernetes"


@dataclass
class KubeEnv:
    cp: ControlPlane
    kube: Kube
    server: ServerProcess
    kube_port: int
    certs: Path
    nodes: list[str] = field(default_factory=list)
    preempt_grace_s: float = 3.0

    @property
    def gpupool(self) -> Gpupool:
        return Gpupool(self.server)

    @property
    def extender_url(self) -> str:
        return f"https://127.0.0.1:{self.kube_port}"

    def serve_args(self) -> tuple[str, ...]:
        return (
            "--kube",
            str(self.cp.kubeconfig("gpupool")),
            "--kube-port",
            str(self.kube_port),
            "--kube-tls-cert",
            str(self.certs / "tls.crt"),
            "--kube-tls-key",
            str(self.certs / "tls.key"),
            "--preempt-grace",
            str(self.preempt_grace_s),
        )

    def restart_gpupool(self, kill9: bool = True) -> None:
        """Stop gpupool (SIGKILL by default) and start it again on the same ports and store."""
        if kill9:
            self.server.kill9()
        else:
            self.server.stop()
        self.server.start(timeout_s=60)

    def node_group(self, specs: list[str]) -> tuple[str, list[str]]:
        """Ready nodes with these simulated GPUs, in a fresh group; wait until gpupool has them."""
        group = f"g{uuid.uuid4().hex[:6]}"
        names = [f"{group}-n{i}" for i in range(len(specs))]
        for name, spec in zip(names, specs, strict=True):
            self.kube.add_node(name, spec, group)
            self.nodes.append(name)
        wait_for(
            f"gpupool to see nodes {names}",
            lambda: set(names) <= {d["node"] for d in self.gpupool.devices()},
            timeout_s=30,
        )
        return group, names

    def stop(self) -> None:
        self.server.stop()
        self.cp.stop()


def start_env(root: Path, serve_args: tuple[str, ...] = ()) -> KubeEnv:
    """Start everything under `root` (stopped again, by PID, if any part fails)."""
    from gpupool.kube.certs import write_certs

    cp = ControlPlane(root)
    cp.start()
    env: KubeEnv | None = None
    try:
        kube = Kube(cp)
        kube.apply_file(DEPLOY / "namespace.yaml")
        kube.apply_file(DEPLOY / "rbac.yaml")
        certs = root / "gpupool-certs"
        write_certs(certs, ["127.0.0.1", "localhost"])
        env = KubeEnv(cp, kube, ServerProcess(home=root / "gpupool", simulate=""), free_port(), certs)
        env.server.home.mkdir()
        env.server.extra_args = env.serve_args() + serve_args
        env.server.start(timeout_s=60)
        # The webhook as deploy/kubernetes/webhook.yaml has it, reached by URL instead of Service.
        kube.apply_file(
            Path(__file__).parent / "webhook-test.yaml",
            {"URL": f"{env.extender_url}/webhook/mutate", "CA_BUNDLE": cp.ca_bundle(certs / "ca.crt")},
        )
        cp.start_scheduler(env.extender_url, certs / "ca.crt")
        time.sleep(2)  # a new webhook configuration takes 1-2 s to reach the API server's admission
        return env
    except BaseException:
        if env is not None:
            env.server.stop()
        cp.stop()
        raise


def check_no_overcommit(env: KubeEnv) -> None:
    """From the claims, and from gpupool's own device counters: nothing is above capacity."""
    devices = {d["uuid"]: d for d in env.gpupool.devices()}
    memory: dict[str, int] = defaultdict(int)
    compute: dict[str, int] = defaultdict(int)
    for claim in env.gpupool.claims("bound"):
        for binding in claim["bindings"]:
            memory[binding["device_uuid"]] += binding["memory_bytes"]
            compute[binding["device_uuid"]] += binding["compute_percent"]
    for device_uuid, device in devices.items():
        assert memory[device_uuid] <= device["memory_total_bytes"], device
        assert compute[device_uuid] <= 100, device
        assert device["memory_allocated_bytes"] == memory[device_uuid], device
        assert device["compute_allocated_percent"] == compute[device_uuid], device


def check_pods_match_claims(env: KubeEnv, namespace: str) -> dict[str, Obj]:
    """Every bound vGPU pod has exactly one bound claim, on its node, named in its annotations."""
    claims = env.gpupool.pod_claims("bound")
    found: dict[str, Obj] = {}
    for pod in env.kube.pods(namespace):
        uid, node = pod["metadata"]["uid"], pod["spec"].get("nodeName")
        if not node:
            assert uid not in claims, f"{pod['metadata']['name']} is Pending but has a bound claim"
            continue
        claim = claims[uid]
        notes = pod["metadata"]["annotations"]
        assert {b["node"] for b in claim["bindings"]} == {node}
        assert notes["gpupool.io/claim"] == claim["id"]
        assert notes["gpupool.io/tenant"] == namespace == claim["tenant"]
        assert notes["gpupool.io/visible-devices"] == ",".join(b["device_uuid"] for b in claim["bindings"])
        found[pod["metadata"]["name"]] = claim
    pods_uids = {p["metadata"]["uid"] for p in env.kube.pods(namespace)}
    ours = {uid for uid, c in claims.items() if c["tenant"] == namespace}
    assert ours <= pods_uids, "a claim outlived its pod"
    return found
