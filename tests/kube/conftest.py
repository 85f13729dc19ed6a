"""One real control plane for tests/kube (etcd, kube-apiserver, kube-scheduler with gpupool as its
extender), one real `gpupool serve --kube` running with deploy/kubernetes/rbac.yaml's rights,
and the webhook registered. Tests keep apart by namespace and by node group (a nodeSelector)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from controlplane import unavailable_reason
from kubeenv import KubeEnv, start_env


@pytest.fixture(scope="session")
def kube_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeEnv]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    env = start_env(tmp_path_factory.mktemp("k8s"))
    print(f"control plane + gpupool up in {time.monotonic() - started:.1f} s")
    try:
        yield env
    finally:
        env.stop()


@pytest.fixture()
def namespace(kube_env: KubeEnv) -> Iterator[str]:
    """A fresh namespace (a tenant of gpupool); its pods are deleted afterwards."""
    name = kube_env.kube.namespace("t")
    yield name
    for pod in kube_env.kube.pods(name):
        kube_env.kube.delete_pod(name, pod["metadata"]["name"])
