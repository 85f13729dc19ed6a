"""Fluent builders for clusters and requests used by the scheduler tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.request import Request


@dataclass
class ClusterBuilder:
    names: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    cpus: list[int] = field(default_factory=list)
    memory: list[int] = field(default_factory=list)
    gpus: list[int] = field(default_factory=list)
    used: list[tuple[int, int, int]] = field(default_factory=list)  # (node, slot, milli used)

    def node(
        self,
        name: str,
        gpus: int = 8,
        model: str = "G2",
        cpu: int = 96_000,
        memory: int = 393_216,
        used: tuple[int, ...] = (),
    ) -> ClusterBuilder:
        index = len(self.names)
        self.names.append(name)
        self.models.append(model)
        self.cpus.append(cpu)
        self.memory.append(memory)
        self.gpus.append(gpus)
        self.used.extend((index, slot, milli) for slot, milli in enumerate(used) if milli)
        return self

    def build(self) -> Cluster:
        cluster = Cluster.build(self.names, self.models, self.cpus, self.memory, self.gpus)
        for node, slot, milli in self.used:
            cluster.gpu_free_milli[node, slot] -= milli
            cluster.mark_changed(node)
        return cluster


def share(
    milli: int, cpu: int = 4_000, memory: int = 1_024, models: tuple[str, ...] | None = None
) -> Request:
    """A request for part of one GPU."""
    return Request(gpus=1, gpu_milli=milli, cpu_milli=cpu, memory=memory, models=models)


def whole(
    gpus: int = 1, cpu: int = 8_000, memory: int = 1_024, models: tuple[str, ...] | None = None
) -> Request:
    """A request for whole GPUs."""
    return Request(gpus=gpus, gpu_milli=1000, cpu_milli=cpu, memory=memory, models=models)


def cpu_only(cpu: int = 4_000, memory: int = 1_024) -> Request:
    return Request(cpu_milli=cpu, memory=memory)
