"""Reading pods, kept as the JSON dicts the API server sends: the vGPU claim a pod asks for, its
identity and its state. Bad input is an InvalidRequest naming the annotation or container."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

from gpupool.errors import InvalidRequest
from gpupool.kube import keys
from gpupool.model import MAX_GPUS_PER_CLAIM, ClaimSpec
from gpupool.model.units import parse_percent, parse_size

Pod = dict[str, Any]
T = TypeVar("T")

MAX_ANNOTATION_CHARS = 128
PRIORITY_RANGE = (-1000, 1000)  # the same bounds as a claim made through the REST API
_MODEL_RE = re.compile(r"^[A-Za-z0-9*?\[\]._-]{1,128}$")
_COUNT_RE = re.compile(r"^[0-9]{1,4}$")
TERMINAL_PHASES = ("Succeeded", "Failed")


def claim_spec(pod: Pod) -> ClaimSpec | None:
    """The claim `pod` asks for (labels not set), or None when it asks for no vGPU."""
    gpus = vgpu_count(pod)
    notes = annotations_of(pod)
    if gpus == 0:
        given = [key for key in keys.REQUEST_ANNOTATIONS if key in notes]
        if given:
            raise InvalidRequest(
                f"annotation {given[0]} is set but no container asks for {keys.RESOURCE} in resources.limits"
            )
        return None
    if gpus > MAX_GPUS_PER_CLAIM:
        raise InvalidRequest(f"{keys.RESOURCE}: at most {MAX_GPUS_PER_CLAIM} vGPUs per pod, got {gpus}")
    return ClaimSpec(
        gpus=gpus,
        memory_bytes=_parsed(notes, keys.REQUEST_MEMORY, parse_size),
        compute_percent=_parsed(notes, keys.REQUEST_COMPUTE, parse_percent),
        model=_parsed(notes, keys.REQUEST_MODEL, _model),
        priority=_parsed(notes, keys.REQUEST_PRIORITY, _priority) or 0,
        preemptible=_parsed(notes, keys.REQUEST_PREEMPTIBLE, _boolean) or False,
    )


def claim_labels(pod: Pod) -> dict[str, str]:
    """The labels that tie a claim to its pod (by UID: a pod re-created under the same name is new)."""
    return {keys.LABEL_ORIGIN: keys.ORIGIN, keys.LABEL_POD: key(pod), keys.LABEL_POD_UID: uid(pod)}


def vgpu_count(pod: Pod) -> int:
    """vGPUs the pod asks for: its containers' sum, or the largest init container if that is more."""
    spec = pod.get("spec") or {}
    regular = sum(_container_count(c) for c in spec.get("containers") or [])
    init = max((_container_count(c) for c in spec.get("initContainers") or []), default=0)
    return max(regular, init)


def _container_count(container: dict[str, Any]) -> int:
    resources = container.get("resources") or {}
    value = (resources.get("limits") or {}).get(keys.RESOURCE)
    if value is None:
        value = (resources.get("requests") or {}).get(keys.RESOURCE)
    if value is None:
        return 0
    text = str(value).strip()
    if not _COUNT_RE.match(text):
        name = container.get("name", "?")
        raise InvalidRequest(
            f"container {name}: {keys.RESOURCE} must be a whole number of vGPUs, got {text!r}"
        )
    return int(text)


def _parsed(notes: dict[str, str], key: str, parse: Callable[[str, str], T]) -> T | None:
    value = notes.get(key)
    if value is None:
        return None
    if len(value) > MAX_ANNOTATION_CHARS:
        raise InvalidRequest(f"annotation {key}: at most {MAX_ANNOTATION_CHARS} characters")
    try:
        return parse(value, f"annotation {key}")
    except InvalidRequest as exc:
        message = exc.message
        if not message.startswith("annotation "):
            message = f"annotation {key}: {message}"
        raise InvalidRequest(message) from None


def _model(value: str, field: str) -> str:
    if not _MODEL_RE.match(value.strip()):
        raise InvalidRequest(f"{field}: {value!r} is not a model pattern such as 'H100*' or 'A100-80GB'")
    return value.strip()


def _priority(value: str, field: str) -> int:
    low, high = PRIORITY_RANGE
    text = value.strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,5}", text) or not low <= int(text) <= high:
        raise InvalidRequest(f"{field}: must be a whole number in {low}..{high}, got {value!r}")
    return int(text)


def _boolean(value: str, field: str) -> bool:
    text = value.strip().lower()
    if text not in ("true", "false"):
        raise InvalidRequest(f"{field}: must be 'true' or 'false', got {value!r}")
    return text == "true"


# ------------------------------------------------------------------ identity and state
def metadata(pod: Pod) -> dict[str, Any]:
    found = pod.get("metadata")
    return found if isinstance(found, dict) else {}


def annotations_of(pod: Pod) -> dict[str, str]:
    found = metadata(pod).get("annotations")
    return found if isinstance(found, dict) else {}


def uid(pod: Pod) -> str:
    return str(metadata(pod).get("uid") or "")


def namespace(pod: Pod) -> str:
    return str(metadata(pod).get("namespace") or "default")


def name(pod: Pod) -> str:
    return str(metadata(pod).get("name") or metadata(pod).get("generateName") or "")


def key(pod: Pod) -> str:
    """`namespace/name`, as kubectl shows it."""
    return f"{namespace(pod)}/{name(pod)}"


def node_name(pod: Pod) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


def phase(pod: Pod) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def is_terminal(pod: Pod) -> bool:
    """Succeeded or Failed: its containers are done and will not restart; the claim can go."""
    return phase(pod) in TERMINAL_PHASES


def is_deleting(pod: Pod) -> bool:
    return bool(metadata(pod).get("deletionTimestamp"))


def wants_vgpu(pod: Pod) -> bool:
    """Asks for gpupool vGPUs (malformed requests count: they are gpupool's to report)."""
    try:
        return vgpu_count(pod) > 0
    except InvalidRequest:
        return True


def waiting_for_node(pod: Pod) -> bool:
    """Not yet bound to a node, not ending: kube-scheduler is still trying to place it."""
    return not node_name(pod) and not is_terminal(pod) and not is_deleting(pod)
