"""The mutating admission webhook (admission.k8s.io/v1), as a pure translation of one AdmissionReview.

For a pod that asks for `gpupool.io/vgpu` it checks the request annotations (a malformed one is
denied, with the reason in the answer `kubectl` prints), sets `schedulerName` when configured, and
gives every container the claim's environment through the downward API: the values are the
annotations gpupool writes at bind time, so the container starts with them.

Any pod that sets NVIDIA_VISIBLE_DEVICES itself is denied: with the NVIDIA container runtime that
variable picks the GPUs mounted into the container, so only gpupool may set it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from gpupool.errors import InvalidRequest
from gpupool.kube import keys, pods
from gpupool.kube.pods import Pod

REVIEW_VERSION = "admission.k8s.io/v1"
OWN_DEVICES_ENV = "NVIDIA_VISIBLE_DEVICES"
HARMLESS_DEVICE_VALUES = ("", "void", "none")  # the runtime mounts no GPU for these


def review(body: dict[str, Any], scheduler_name: str | None = None) -> dict[str, Any]:
    """The AdmissionReview answer to `body` (a review of a pod CREATE; anything else is allowed)."""
    request = body.get("request") if isinstance(body, dict) else None
    if not isinstance(request, dict):
        raise InvalidRequest("not an AdmissionReview: no request")
    response: dict[str, Any] = {"uid": str(request.get("uid", "")), "allowed": True}
    kind = (request.get("kind") or {}).get("kind")
    pod = request.get("object")
    if kind == "Pod" and request.get("operation") == "CREATE" and isinstance(pod, dict):
        try:
            patch = pod_patch(pod, scheduler_name)
        except InvalidRequest as exc:
            response["allowed"] = False
            response["status"] = {"code": 400, "reason": "BadRequest", "message": f"gpupool: {exc.message}"}
        else:
            if patch:
                response["patchType"] = "JSONPatch"
                response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": REVIEW_VERSION, "kind": "AdmissionReview", "response": response}


def pod_patch(pod: Pod, scheduler_name: str | None = None) -> list[dict[str, Any]]:
    """JSON Patch operations for a new pod; InvalidRequest (deny) for a malformed vGPU request."""
    _refuse_own_devices(pod)
    spec = pods.claim_spec(pod)
    if spec is None:
        return []
    ours = claim_env(fractional=not spec.whole_gpu)
    names = {entry["name"] for entry in ours}
    patch: list[dict[str, Any]] = []
    pod_spec = pod.get("spec") or {}
    for kind in ("initContainers", "containers"):
        for index, container in enumerate(pod_spec.get(kind) or []):
            # The user's own values of these names would contradict the claim: ours replace them.
            kept = [e for e in container.get("env") or [] if e.get("name") not in names]
            patch.append({"op": "add", "path": f"/spec/{kind}/{index}/env", "value": kept + ours})
    if scheduler_name and pod_spec.get("schedulerName") != scheduler_name:
        patch.append({"op": "add", "path": "/spec/schedulerName", "value": scheduler_name})
    return patch


def claim_env(fractional: bool) -> list[dict[str, Any]]:
    """The environment entries every container of a vGPU pod gets."""
    entries: list[dict[str, Any]] = []
    for name, annotation in keys.ENV_FROM_ANNOTATION.items():
        if name in keys.FRACTION_ONLY_ENV and not fractional:
            continue
        path = f"metadata.annotations['{annotation}']"
        entries.append({"name": name, "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": path}}})
    entries.extend({"name": name, "value": value} for name, value in keys.STATIC_ENV.items())
    return entries


def _refuse_own_devices(pod: Pod) -> None:
    ours = next(e for e in claim_env(fractional=False) if e["name"] == OWN_DEVICES_ENV)
    pod_spec = pod.get("spec") or {}
    for kind in ("initContainers", "containers", "ephemeralContainers"):
        for container in pod_spec.get(kind) or []:
            for entry in container.get("env") or []:
                if entry.get("name") != OWN_DEVICES_ENV or entry == ours:
                    continue  # ours: a webhook may be called again on a pod it already patched
                value = entry.get("value")
                if "valueFrom" in entry or str(value or "").strip().lower() not in HARMLESS_DEVICE_VALUES:
                    raise InvalidRequest(
                        f"container {container.get('name', '?')} sets {OWN_DEVICES_ENV}; GPUs are handed "
                        f"out by gpupool: ask for {keys.RESOURCE} in resources.limits instead"
                    )
