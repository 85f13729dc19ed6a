"""The calls gpupool makes to the Kubernetes API server, over the official `kubernetes` client.

Objects travel as the JSON dicts the server sends (`_preload_content=False`), the same shape the
webhook and the extender receive, so one set of readers (`pods`) serves all. The client's errors
become `KubeApiError` (with the HTTP status) at this boundary.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gpupool.errors import GpupoolError, InvalidRequest

IN_CLUSTER = "in-cluster"
"""`--kube in-cluster`: use the service account Kubernetes mounts into gpupool's own pod."""
REQUEST_TIMEOUT_S = 10.0
EVENT_SOURCE = "gpupool"

Obj = dict[str, Any]


class KubeApiError(GpupoolError):
    """The API server refused a call or could not be reached; `status` is its HTTP status (0: none)."""

    status_code = 502

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class KubeApi:
    """One connection configuration to one API server (thread-safe: urllib3 pools connections)."""

    def __init__(self, kubeconfig: str) -> None:
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            if kubeconfig == IN_CLUSTER:
                config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                if not Path(kubeconfig).is_file():
                    raise InvalidRequest(f"--kube: no kubeconfig file at {kubeconfig}")
                config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=kubeconfig, client_configuration=configuration
                )
        except config.ConfigException as exc:
            raise InvalidRequest(f"--kube {kubeconfig}: {exc}") from None
        # No silent retries in the transport: every caller has its own (the informers back off,
        # kube-scheduler retries a failed bind), and a failure is one clear error, not log noise.
        configuration.retries = 0
        self.server = str(configuration.host)
        self.api_client = client.ApiClient(configuration)
        self.core = client.CoreV1Api(self.api_client)
        self._client = client

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    # ---------------------------------------------------------------- reading
    def version(self) -> str:
        """The server's gitVersion (a cheap reachability check)."""
        from kubernetes import client

        found = self._call(client.VersionApi(self.api_client).get_code, _preload_content=False)
        return str(found.get("gitVersion", "?"))

    def list_pods(self) -> tuple[list[Obj], str]:
        """Every pod of every namespace, and the list's resourceVersion (to watch from)."""
        found = self._call(self.core.list_pod_for_all_namespaces, _preload_content=False)
        return list(found.get("items") or []), str(found["metadata"].get("resourceVersion", ""))

    def list_nodes(self) -> tuple[list[Obj], str]:
        found = self._call(self.core.list_node, _preload_content=False)
        return list(found.get("items") or []), str(found["metadata"].get("resourceVersion", ""))

    def get_pod(self, namespace: str, name: str) -> Obj | None:
        """The pod, or None when there is none of that name."""
        try:
            return self._call(self.core.read_namespaced_pod, name, namespace, _preload_content=False)
        except KubeApiError as exc:
            if exc.status == 404:
                return None
            raise

    def watch(self, kind: str, resource_version: str, timeout_s: int) -> Iterator[tuple[str, Obj]]:
        """(event type, object) for `pods` or `nodes` changed after `resource_version`, for up to
        `timeout_s`. KubeApiError with status 410 when that version is too old (list again)."""
        lister: Callable[..., Any] = (
            self.core.list_pod_for_all_namespaces if kind == "pods" else self.core.list_node
        )
        try:
            response = lister(
                watch=True,
                resource_version=resource_version,
                timeout_seconds=timeout_s,
                allow_watch_bookmarks=True,
                _preload_content=False,
                _request_timeout=(REQUEST_TIMEOUT_S, timeout_s + REQUEST_TIMEOUT_S),
            )
        except Exception as exc:
            raise self._translate(exc) from None
        try:
            from kubernetes.watch.watch import iter_resp_lines

            for line in iter_resp_lines(response):  # type: ignore[no-untyped-call]
                if not line:
                    continue
                event = json.loads(line)
                kind_of_event, obj = str(event.get("type", "")), event.get("object") or {}
                if kind_of_event == "ERROR":
                    raise KubeApiError(f"watch {kind}: {obj.get('message', obj)}", int(obj.get("code", 0)))
                yield kind_of_event, obj
        except KubeApiError:
            raise
        except Exception as exc:
            raise self._translate(exc) from None
        finally:
            response.close()
            response.release_conn()

    # ---------------------------------------------------------------- writing
    def bind(self, namespace: str, name: str, uid: str, node: str, annotations: dict[str, str]) -> None:
        """Bind the pod to `node`; the Binding's annotations land on the pod in the same write."""
        body = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": name, "namespace": namespace, "uid": uid, "annotations": annotations},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        }
        # The server answers a Status, not a Binding: read it raw (the typed client cannot).
        self._call(self.core.create_namespaced_pod_binding, name, namespace, body, _preload_content=False)

    def evict(self, namespace: str, name: str, grace_s: int) -> None:
        """Evict the pod through the Eviction API (PodDisruptionBudgets apply) with a grace period."""
        options = {"gracePeriodSeconds": max(0, grace_s)}
        metadata = {"name": name, "namespace": namespace}
        last: KubeApiError | None = None
        # policy/v1 from Kubernetes 1.22; older servers (1.20 in the tests) know only v1beta1.
        for version in ("policy/v1", "policy/v1beta1"):
            body = {"apiVersion": version, "kind": "Eviction", "metadata": metadata, "deleteOptions": options}
            try:
                self._call(
                    self.core.create_namespaced_pod_eviction, name, namespace, body, _preload_content=False
                )
                return
            except KubeApiError as exc:
                if exc.status not in (400, 415, 422):  # 404: pod gone, 429: a disruption budget
                    raise
                last = exc
        assert last is not None
        raise last

    def patch_annotations(
        self, kind: str, name: str, annotations: dict[str, str | None], namespace: str = ""
    ) -> None:
        """Merge `annotations` into a pod's or node's (None removes one)."""
        body = {"metadata": {"annotations": annotations}}
        if kind == "pods":
            self._call(self.core.patch_namespaced_pod, name, namespace, body, _preload_content=False)
        else:
            self._call(self.core.patch_node, name, body, _preload_content=False)

    def record_event(self, pod: Obj, reason: str, message: str, warning: bool = False) -> None:
        """A core/v1 Event on the pod, as `kubectl describe pod` shows it."""
        meta = pod.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'pod')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta.get("name"),
                "namespace": namespace,
                "uid": meta.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": EVENT_SOURCE},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._call(self.core.create_namespaced_event, namespace, body, _preload_content=False)

    # ---------------------------------------------------------------- helpers
    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Obj:
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT_S)
        try:
            response = method(*args, **kwargs)
        except Exception as exc:
            raise self._translate(exc) from None
        data = response.data if hasattr(response, "data") else b"{}"
        try:
            decoded = json.loads(data or b"{}")
        except ValueError:
            return {}
        return decoded if isinstance(decoded, dict) else {}

    def _translate(self, exc: Exception) -> KubeApiError:
        if isinstance(exc, self._client.ApiException):
            message = str(exc.reason)
            with contextlib.suppress(ValueError, AttributeError):  # not a Status: keep the reason
                message = json.loads(exc.body or "{}").get("message") or message
            return KubeApiError(f"API server {self.server}: {exc.status} {message}", int(exc.status or 0))
        return KubeApiError(f"API server {self.server} unreachable: {exc}")
