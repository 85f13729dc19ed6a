"""What the Kubernetes tests do to the cluster and read back, over the official client, plus the
gpupool side (claims and events from its REST API). Pods, nodes and events stay plain dicts."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from controlplane import ControlPlane, wait_for

from serverctl import ServerProcess

Obj = dict[str, Any]
RESOURCE = "gpupool.io/vgpu"
GiB = 1024**3


def _raw(response: Any) -> Obj:
    return dict(json.loads(response.data)) if response.data else {}


@dataclass
class Kube:
    """One API server, as the admin sees it."""

    cp: ControlPlane
    core: Any = field(init=False)
    client: Any = field(init=False)

    def __post_init__(self) -> None:
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(
            config_file=str(self.cp.kubeconfig("admin")), client_configuration=configuration
        )
        self.client = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.client)

    # ---------------------------------------------------------------- objects
    def apply_file(self, path: Path, substitutions: dict[str, str] | None = None) -> None:
        """Create every object of a manifest file (after ${NAME} substitution)."""
        import yaml
        from kubernetes import utils

        text = path.read_text()
        for name, value in (substitutions or {}).items():
            text = text.replace("${" + name + "}", value)
        for document in yaml.safe_load_all(text):
            if document:
                utils.create_from_dict(self.client, document)

    def namespace(self, prefix: str) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        self.core.create_namespace({"metadata": {"name": name}})
        return name

    def add_node(self, name: str, simulate: str, group: str) -> None:
        """A Ready node (no kubelet) whose GPUs gpupool reads from the simulate annotation."""
        capacity = {"cpu": "64", "memory": "512Gi", "pods": "110"}
        self.core.create_node(
            {
                "metadata": {
                    "name": name,
                    "labels": {"kubernetes.io/hostname": name, "gpupool-test": group},
                    "annotations": {"gpupool.io/simulate": simulate},
                }
            }
        )
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ready = {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "no kubelet: a test node",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        status = {"status": {"conditions": [ready], "capacity": capacity, "allocatable": capacity}}
        self.core.patch_node_status(name, status)

    def delete_node(self, name: str) -> None:
        self.core.delete_node(name)

    def create_pod(
        self,
        namespace: str,
        name: str,
        group: str,
        vgpus: int = 1,
        annotations: dict[str, str] | None = None,
        containers: int = 1,
        scheduler_name: str | None = None,
    ) -> Obj:
        """A pod asking for `vgpus` (on the first container), kept on the nodes of `group`."""
        spec: Obj = {
            **({"schedulerName": scheduler_name} if scheduler_name else {}),
            "nodeSelector": {"gpupool-test": group},
            "containers": [
                {
                    "name": f"c{i}",
                    "image": "registry.k8s.io/pause:3.2",
                    "env": [{"name": "USER_SETTING", "value": "kept"}],
                    **({"resources": {"limits": {RESOURCE: str(vgpus)}}} if i == 0 and vgpus else {}),
                }
                for i in range(containers)
            ],
        }
        body = {"metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}
        return _raw(self.core.create_namespaced_pod(namespace, body, _preload_content=False))

    def pod(self, namespace: str, name: str) -> Obj | None:
        from kubernetes.client import ApiException

        try:
            return _raw(self.core.read_namespaced_pod(name, namespace, _preload_content=False))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def pods(self, namespace: str) -> list[Obj]:
        return list(_raw(self.core.list_namespaced_pod(namespace, _preload_content=False))["items"])

    def delete_pod(self, namespace: str, name: str) -> None:
        """Delete at once (no kubelet would ever confirm a graceful delete)."""
        self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)

    def events(self, namespace: str, pod: str) -> list[Obj]:
        found = self.core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={pod}", _preload_content=False
        )
        return list(_raw(found)["items"])

    def wait_bound(self, namespace: str, name: str, timeout_s: float = 60.0) -> Obj:
        def bound() -> Obj | None:
            pod = self.pod(namespace, name)
            return pod if pod and pod["spec"].get("nodeName") else None

        return dict(wait_for(f"pod {namespace}/{name} bound", bound, timeout_s, every_s=0.2))


@dataclass
class Gpupool:
    """gpupool's REST API as the admin."""

    server: ServerProcess

    def http(self) -> httpx.Client:
        return self.server.client()

    def claims(self, states: str = "pending,bound") -> list[Obj]:
        with self.http() as http:
            found = http.get("/v1/claims", params=[("state", s) for s in states.split(",")])
            found.raise_for_status()
            body = found.json()
        return list(body["items"] if isinstance(body, dict) else body)

    def pod_claims(self, states: str = "pending,bound") -> dict[str, Obj]:
        """Pod UID -> its claim (only claims of pods)."""
        return {
            c["labels"]["gpupool.io/pod-uid"]: c
            for c in self.claims(states)
            if c.get("labels", {}).get("gpupool.io/origin") == "kubernetes"
        }

    def devices(self) -> list[Obj]:
        with self.http() as http:
            found = http.get("/v1/devices")
            found.raise_for_status()
            body = found.json()
        return list(body["items"] if isinstance(body, dict) else body)

    def events(self, action: str) -> list[Obj]:
        """The audit events of that action among the newest 10,000, oldest first."""
        with self.http() as http:
            page = http.get("/v1/events", params={"limit": 10_000})
            page.raise_for_status()
        return [e for e in page.json()["items"] if e["action"] == action]
