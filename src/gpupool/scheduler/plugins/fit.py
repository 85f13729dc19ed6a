"""Filters: `gpu-fit` (model, GPU count and per-GPU share on one node) and `node-fit` (CPU, memory)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.framework import CycleState
from gpupool.scheduler.request import Request
from gpupool.scheduler.status import SUCCESS, Status, unresolvable, unschedulable

GPU_FIT = "gpu-fit"
NODE_FIT = "node-fit"


def _where(request: Request) -> str:
    if request.model_pattern:
        return f" on model {request.model_pattern}"
    if request.models:
        return " on model " + "|".join(request.models)
    return ""


class GpuFit:
    """Nodes with an allowed GPU model and `gpus` GPUs that each hold the per-GPU demand."""

    NAME = GPU_FIT

    def filter(
        self, request: Request, cluster: Cluster, cycle: CycleState
    ) -> tuple[NDArray[np.bool_], Status]:
        model_ok = cluster.model_mask(request)[cluster.model_id]
        if request.gpus == 0:
            return model_ok, SUCCESS
        if not model_ok.any():
            return model_ok, unresolvable(f"no device{_where(request)} in the pool", self.NAME)
        milli = request.slot_milli if request.slot_milli is not None else request.gpu_milli
        fitting = (cluster.gpu_free_milli >= milli) & (cluster.gpu_total_milli > 0)
        if request.slot_memory is not None or request.gpu_memory_bytes:
            memory = request.slot_memory if request.slot_memory is not None else request.gpu_memory_bytes
            fitting &= cluster.gpu_mem_free_bytes >= memory
        mask = model_ok & (fitting.sum(axis=1) >= request.gpus)
        if mask.any():
            return mask, SUCCESS
        if not (model_ok & (cluster.gpu_count >= request.gpus)).any():
            return mask, unresolvable(f"no node{_where(request)} has {request.gpus} GPUs", self.NAME)
        what = request.describe or f"{request.gpu_milli} milli-GPU"
        if request.gpus == 1:
            return mask, unschedulable(f"no device with {what} free{_where(request)}", self.NAME)
        return mask, unschedulable(
            f"no node with {request.gpus} devices of {what} free{_where(request)}", self.NAME
        )


class NodeFit:
    """Nodes with the request's CPU (milli) and memory free."""

    NAME = NODE_FIT

    def filter(
        self, request: Request, cluster: Cluster, cycle: CycleState
    ) -> tuple[NDArray[np.bool_], Status]:
        if request.cpu_milli == 0 and request.memory == 0:
            return np.ones(cluster.size, dtype=np.bool_), SUCCESS
        mask = (cluster.cpu_free_milli >= request.cpu_milli) & (cluster.mem_free >= request.memory)
        if mask.any():
            return mask, SUCCESS
        return mask, unschedulable(
            f"no node with {request.cpu_milli} milli-CPU and {request.memory} MiB memory free", self.NAME
        )
