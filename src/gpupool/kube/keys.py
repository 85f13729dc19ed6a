"""The names gpupool and Kubernetes agree on: the resource, annotations, claim labels, environment.

A pod asks with `resources.limits: {gpupool.io/vgpu: N}` and the `REQUEST_*` annotations; at bind
gpupool writes the `BOUND_*` annotations (through the Binding, so they land with the node name),
and the containers read them through the downward API (`ENV_FROM_ANNOTATION`), so they start
with the same environment `gpupool run` gives a process (`gpupool.isolation.launch_env`).
"""

from __future__ import annotations

RESOURCE = "gpupool.io/vgpu"
"""The extended resource a pod asks for: how many vGPUs (kube-scheduler ignores it; gpupool decides)."""

# What a pod asks for (annotations, all optional; none of memory/compute = whole GPUs).
REQUEST_MEMORY = "gpupool.io/memory"  # per vGPU, "10GiB"
REQUEST_COMPUTE = "gpupool.io/compute"  # per vGPU, percent of SMs, "25"
REQUEST_MODEL = "gpupool.io/model"  # device model pattern, "H100*"
REQUEST_PRIORITY = "gpupool.io/priority"  # -1000..1000
REQUEST_PREEMPTIBLE = "gpupool.io/preemptible"  # "true" | "false"
REQUEST_ANNOTATIONS = (REQUEST_MEMORY, REQUEST_COMPUTE, REQUEST_MODEL, REQUEST_PRIORITY, REQUEST_PREEMPTIBLE)

# What gpupool writes on the pod when it binds it.
BOUND_CLAIM = "gpupool.io/claim"
BOUND_TENANT = "gpupool.io/tenant"
BOUND_VISIBLE_DEVICES = "gpupool.io/visible-devices"
BOUND_MEMORY_LIMIT = "gpupool.io/memory-limit-bytes"
BOUND_COMPUTE = "gpupool.io/compute-percent"
BOUND_MPS_THREADS = "gpupool.io/mps-active-thread-percentage"
BOUND_MPS_MEMORY = "gpupool.io/mps-pinned-device-mem-limit"

REQUEUE = "gpupool.io/requeued-at"
"""Touched on Pending vGPU pods when capacity frees, so kube-scheduler retries them at once."""

# Node annotations: the node's devices.
NODE_SIMULATE = "gpupool.io/simulate"  # simulated GPUs, "4xH100-80GB" (tests, demos)
NODE_DEVICES = "gpupool.io/devices"  # JSON list written by `gpupool kube node-agent` (NVML)

# Labels on the claims of pods (the claim's link back to its pod).
LABEL_ORIGIN = "gpupool.io/origin"
ORIGIN = "kubernetes"
LABEL_POD = "gpupool.io/pod"  # namespace/name
LABEL_POD_UID = "gpupool.io/pod-uid"
LABEL_PREFERRED_NODE = "gpupool.io/preferred-node"  # gpupool's pick among kube-scheduler's candidates

ENV_FROM_ANNOTATION: dict[str, str] = {
    "CUDA_VISIBLE_DEVICES": BOUND_VISIBLE_DEVICES,
    "NVIDIA_VISIBLE_DEVICES": BOUND_VISIBLE_DEVICES,
    "GPUPOOL_DEVICES": BOUND_VISIBLE_DEVICES,
    "GPUPOOL_CLAIM_ID": BOUND_CLAIM,
    "GPUPOOL_TENANT": BOUND_TENANT,
    "GPUPOOL_MEMORY_LIMIT_BYTES": BOUND_MEMORY_LIMIT,
    "GPUPOOL_COMPUTE_PERCENT": BOUND_COMPUTE,
    "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE": BOUND_MPS_THREADS,
    "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT": BOUND_MPS_MEMORY,
}
"""Container environment variable -> the annotation it is read from (downward API)."""

FRACTION_ONLY_ENV = frozenset({"CUDA_MPS_ACTIVE_THREAD_PERCENTAGE", "CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"})
"""Only fractional vGPUs get MPS limits (an empty MPS variable is not the same as none)."""

STATIC_ENV = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
"""Set as plain values: the same for every claim."""
