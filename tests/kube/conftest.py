"""One real control plane per session (etcd, kube-apiserver, kube-scheduler with gpupool as its
extender), one real `gpupool serve --kube` running with deploy/kubernetes/rbac.yaml's rights,
and the webhook registered. Tests keep apart by namespace and by node group (a nodeSelector)."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from controlplane import REPO_ROOT, ControlPlane, unavailable_reason, wait_for
from kubetest import Gpupool, Kube

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


@pytest.fixture(scope="session")
def kube_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeEnv]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    from gpupool.kube.certs import write_certs

    root = tmp_path_factory.mktemp("k8s")
    cp = ControlPlane(root)
    started = time.monotonic()
    cp.start()
    server: ServerProcess | None = None
    try:
        kube = Kube(cp)
        kube.apply_file(DEPLOY / "namespace.yaml")
        kube.apply_file(DEPLOY / "rbac.yaml")
        certs = root / "gpupool-certs"
        write_certs(certs, ["127.0.0.1", "localhost"])
        kube_port = free_port()
        env = KubeEnv(cp, kube, ServerProcess(home=root / "gpupool", simulate=""), kube_port, certs)
        env.server.home.mkdir()
        env.server.extra_args = env.serve_args()
        server = env.server.start(timeout_s=60)
        # The webhook as deploy/kubernetes/webhook.yaml has it, reached by URL instead of Service.
        kube.apply_file(
            Path(__file__).parent / "webhook-test.yaml",
            {"URL": f"{env.extender_url}/webhook/mutate", "CA_BUNDLE": cp.ca_bundle(certs / "ca.crt")},
        )
        cp.start_scheduler(env.extender_url, certs / "ca.crt")
        time.sleep(2)  # a new webhook configuration takes 1-2 s to reach the API server's admission
        print(f"control plane + gpupool up in {time.monotonic() - started:.1f} s")
        yield env
    finally:
        if server is not None:
            server.stop()
        cp.stop()


@pytest.fixture()
def namespace(kube_env: KubeEnv) -> Iterator[str]:
    """A fresh namespace (a tenant of gpupool); its pods are deleted afterwards."""
    name = kube_env.kube.namespace("t")
    yield name
    for pod in kube_env.kube.pods(name):
        kube_env.kube.delete_pod(name, pod["metadata"]["name"])
