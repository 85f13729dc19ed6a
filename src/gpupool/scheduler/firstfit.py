"""The simplest placement: the first node (by name) with enough fitting devices, first devices by index.

Kept as a reference policy and a fallback; the framework's policies replace it behind `Placer`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace

from gpupool.model import Binding, ClaimSpec, format_size
from gpupool.scheduler.contract import DeviceLoad, NodeVerdict, PlacementResult, loads_on
from gpupool.scheduler.models import MIG_HINT, allows_model, has_mig_instances


class FirstFitPlacer:
    name = "firstfit"

    def place(self, spec: ClaimSpec, cluster: Sequence[DeviceLoad], learn: bool = True) -> PlacementResult:
        by_node: dict[str, list[tuple[DeviceLoad, int, int]]] = defaultdict(list)
        matching = 0
        for load in cluster:
            if not allows_model(spec, load.device.model):
                continue
            matching += 1
            memory, compute = spec.demand_on(load.device.memory_total_bytes)
            if load.free_memory_bytes >= memory and load.free_compute_percent >= compute:
                by_node[load.device.node].append((load, memory, compute))
        for node in sorted(by_node):
            fits = sorted(by_node[node], key=lambda item: item[0].device.index)
            if len(fits) >= spec.gpus:
                return PlacementResult(
                    bindings=tuple(
                        Binding(
                            device_uuid=load.device.uuid,
                            node=node,
                            memory_bytes=memory,
                            compute_percent=compute,
                            device_index=load.device.index,
                            whole_device=spec.whole_gpu,
                        )
                        for load, memory, compute in fits[: spec.gpus]
                    )
                )
        reason = unschedulable_reason(spec, matching)
        if spec.mig is None and has_mig_instances([load.device.model for load in cluster]):
            reason += MIG_HINT
        return PlacementResult(reason=reason)

    def assess(self, spec: ClaimSpec, cluster: Sequence[DeviceLoad]) -> list[NodeVerdict]:
        """Fit per node; earlier names score higher, as this policy takes the first that fits."""
        names = sorted({load.device.node for load in cluster})
        verdicts = []
        for position, name in enumerate(names):
            result = self.place(spec, loads_on(cluster, {name}))
            verdicts.append(NodeVerdict(name, result.ok, result.reason, score=float(-position)))
        first = next((v for v in verdicts if v.fits), None)
        return [replace(v, best=True) if v is first else v for v in verdicts]


def unschedulable_reason(spec: ClaimSpec, matching_devices: int) -> str:
    """A human reason for a claim that fits nowhere."""
    where = f" on model {spec.model}" if spec.model else ""
    if spec.mig is not None:
        where = f" of MIG profile {spec.mig}{where}"
    if matching_devices == 0:
        return f"no device{where} in the pool"
    if spec.whole_gpu:
        what = "a fully free GPU"
    else:
        parts = []
        if spec.memory_bytes is not None:
            parts.append(f"{format_size(spec.memory_bytes)} free")
        if spec.compute_percent is not None:
            parts.append(f"{spec.compute_percent}% compute free")
        what = "a device with " + " and ".join(parts)
    count = f"{spec.gpus} x " if spec.gpus > 1 else ""
    same_node = " on one node" if spec.gpus > 1 else ""
    return f"waiting for {count}{what}{where}{same_node}"
