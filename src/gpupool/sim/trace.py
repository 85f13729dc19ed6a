"""Read the Alibaba openb CSV schema: node lists (sn, cpu_milli, memory_mib, gpu, model) and pod
lists (name, cpu_milli, memory_mib, num_gpu, gpu_milli[, gpu_spec, ...]). Extra columns are ignored."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from gpupool.errors import InvalidRequest
from gpupool.scheduler.cluster import Cluster
from gpupool.scheduler.frag import Shape
from gpupool.scheduler.request import Request

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")


@dataclass(frozen=True)
class NodeTable:
    """Nodes sorted by name (the tie-break order): CPU milli, memory MiB, GPU count, model."""

    names: list[str]
    cpu_milli: list[int]
    memory_mib: list[int]
    gpus: list[int]
    models: list[str]

    def cluster(self) -> Cluster:
        """A fresh, empty cluster of these nodes."""
        return Cluster.build(self.names, self.models, self.cpu_milli, self.memory_mib, self.gpus)

    @property
    def total_gpu_milli(self) -> int:
        return 1000 * sum(self.gpus)


@dataclass(frozen=True)
class PodTable:
    """Pods sorted by name; `specs[i]` is the allowed models (None = any)."""

    names: list[str]
    cpu_milli: list[int]
    memory_mib: list[int]
    gpus: list[int]
    gpu_milli: list[int]
    specs: list[tuple[str, ...] | None]

    def __len__(self) -> int:
        return len(self.names)

    def request(self, index: int) -> Request:
        """Pod `index` as a scheduler request (memory in MiB)."""
        spec = self.specs[index]
        return Request(
            gpus=self.gpus[index],
            gpu_milli=self.gpu_milli[index] if self.gpus[index] else 0,
            cpu_milli=self.cpu_milli[index],
            memory=self.memory_mib[index],
            models=spec,
            describe=f"{self.gpu_milli[index]} milli-GPU",
        )

    def shape(self, index: int) -> Shape:
        """(cpu, milli per GPU, GPUs, spec) as FGD's typical-pod grouping sees it."""
        gpus = self.gpus[index]
        return (self.cpu_milli[index], self.gpu_milli[index] if gpus else 0, gpus, self.specs[index], None)


def _rows(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [name for name in required if name not in (reader.fieldnames or [])]
            if missing:
                raise InvalidRequest(f"{path}: missing columns {', '.join(missing)}")
            return list(reader)
    except OSError as exc:
        raise InvalidRequest(f"{path}: cannot read ({exc.strerror})") from exc


def _int(text: str) -> int:
    return int(float(text)) if text.strip() else 0


def read_nodes(path: Path) -> NodeTable:
    """Read a node list; rows sorted by node name."""
    rows = sorted(_rows(path, NODE_COLUMNS), key=lambda row: row["sn"])
    return NodeTable(
        names=[row["sn"] for row in rows],
        cpu_milli=[_int(row["cpu_milli"]) for row in rows],
        memory_mib=[_int(row["memory_mib"]) for row in rows],
        gpus=[_int(row["gpu"]) for row in rows],
        models=[
            (row["model"] or "").strip() if (row["model"] or "").strip() != "nan" else "" for row in rows
        ],
    )


def read_pods(path: Path) -> PodTable:
    """Read a pod list; rows sorted by pod name (SetWorkloadPods)."""
    rows = sorted(_rows(path, POD_COLUMNS), key=lambda row: row["name"])
    specs: list[tuple[str, ...] | None] = []
    for row in rows:
        text = (row.get("gpu_spec") or "").strip()
        specs.append(tuple(text.split("|")) if text and text != "nan" else None)
    return PodTable(
        names=[row["name"] for row in rows],
        cpu_milli=[_int(row["cpu_milli"]) for row in rows],
        memory_mib=[_int(row["memory_mib"]) for row in rows],
        gpus=[_int(row["num_gpu"]) for row in rows],
        gpu_milli=[_int(row["gpu_milli"]) for row in rows],
        specs=specs,
    )
