"""The built-in default of `gpupool sim`: a synthetic cluster and pod list shaped like Alibaba's openb.

The openb trace (github.com/alibaba/clusterdata, folder cluster-trace-gpu-v2023) may be used "for
research or study purpose" only, so gpupool does not ship it or any part of it. This module draws
a cluster about a tenth of openb's size, and a pod list, from the trace's *published aggregate
statistics* (its README and the FGD paper, USENIX ATC '23): the node configurations, the share of
each kind of pod, the histogram of fractional GPU requests and the commonest CPU requests per kind.
No row of the trace is copied; counts are apportioned deterministically (largest remainder), so the
files are the same on every machine. `python -m gpupool.sim.synthetic` rewrites the shipped CSVs
(`sim/data/`); a test checks that they are exactly what this code draws.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
NODES_FILE = DATA_DIR / "synthetic_openb_nodes.csv"
PODS_FILE = DATA_DIR / "synthetic_openb_pods.csv"

REAL_TRACE_URL = "https://github.com/alibaba/clusterdata/tree/master/cluster-trace-gpu-v2023"
SCALE = 0.1
"""Nodes of each configuration relative to openb's 1,213 (about 120 nodes and 600 GPUs)."""
DEMAND_OF_CAPACITY = 0.98
"""openb's pods ask for 98.0% of its GPUs; the synthetic pod list keeps that ratio."""
MEMORY_MIB_PER_VCPU = 4096  # pods ask for about 4 GiB of host memory per vCPU in openb

# (model, GPUs, vCPU, memory GiB, nodes in openb): every node configuration of the trace.
NODE_CONFIGS: tuple[tuple[str, int, int, int, int], ...] = (
    ("G2", 8, 96, 384, 549),
    ("T4", 2, 104, 512, 387),
    ("P100", 2, 16, 120, 107),
    ("G3", 8, 128, 768, 39),
    ("V100M16", 4, 32, 128, 28),
    ("P100", 2, 64, 256, 22),
    ("V100M32", 8, 96, 768, 21),
    ("V100M16", 1, 8, 32, 19),
    ("T4", 4, 96, 384, 17),
    ("V100M32", 4, 48, 368, 9),
    ("V100M16", 8, 64, 256, 7),
    ("P100", 1, 8, 60, 3),
    ("P100", 2, 8, 60, 2),
    ("A10", 1, 128, 1024, 2),
    ("V100M16", 8, 82, 336, 1),
)


@dataclass(frozen=True)
class PodKind:
    """One kind of pod: its GPU count, its share of all pods, and histograms (value -> weight)."""

    name: str
    gpus: int
    pods_in_openb: int
    gpu_milli: dict[int, int]  # milli-GPU per GPU -> pods
    vcpu: dict[int, int]  # vCPU -> pods (the commonest values, each at least 2% of the kind)


# fmt: off
FRACTIONAL_MILLI: dict[int, int] = {  # milli-GPU of the 3,078 fractional pods of openb -> pods
    50: 7, 110: 24, 140: 1, 160: 74, 220: 62, 230: 140, 270: 4, 290: 1, 320: 328, 330: 7,
    350: 6, 370: 47, 440: 2, 460: 128, 470: 750, 480: 19, 550: 72, 590: 75, 650: 253, 810: 1078,
}
# fmt: on

POD_KINDS: tuple[PodKind, ...] = (
    PodKind("cpu-only", 0, 1088, {0: 1}, {12: 370, 32: 290, 8: 185, 15: 120, 16: 109}),
    PodKind("fractional", 1, 3078, FRACTIONAL_MILLI, {3: 1122, 4: 659, 12: 631, 8: 488, 6: 150}),
    PodKind(
        "1-gpu",
        1,
        3911,
        {1000: 1},
        {11: 1473, 12: 535, 3: 470, 16: 338, 19: 255, 8: 205, 10: 195, 4: 159, 14: 94, 24: 84},
    ),
    PodKind("2-gpu", 2, 16, {1000: 1}, {16: 7, 6: 3, 30: 3, 17: 2}),
    PodKind("4-gpu", 4, 15, {1000: 1}, {32: 12, 60: 3}),
    PodKind("8-gpu", 8, 44, {1000: 1}, {64: 21, 88: 18, 120: 5}),
)

NODE_HEADER = "sn,cpu_milli,memory_mib,gpu,model"
POD_HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec"


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split `total` into whole parts proportional to `weights` (largest remainder, ties to the first)."""
    weight_sum = float(sum(weights))
    exact = [total * w / weight_sum for w in weights]
    parts = [int(value) for value in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - parts[i]), i))
    for index in by_remainder[: total - sum(parts)]:
        parts[index] += 1
    return parts


def node_rows(scale: float = SCALE) -> list[str]:
    """The cluster: each openb configuration scaled, at least one node of every GPU model."""
    total = round(sum(config[4] for config in NODE_CONFIGS) * scale)
    counts = apportion(total, [config[4] for config in NODE_CONFIGS])
    for model in {config[0] for config in NODE_CONFIGS}:  # keep every model (A10 has 2 of 1213)
        first = next(i for i, config in enumerate(NODE_CONFIGS) if config[0] == model)
        if not any(counts[i] for i, config in enumerate(NODE_CONFIGS) if config[0] == model):
            counts[first] = 1
    rows: list[str] = []
    for (model, gpus, vcpu, memory_gib, _), count in zip(NODE_CONFIGS, counts, strict=True):
        for _ in range(count):
            rows.append(f"syn-node-{len(rows):04d},{vcpu * 1000},{memory_gib * 1024},{gpus},{model}")
    return rows


def _gpu_capacity(rows: Sequence[str]) -> int:
    return sum(int(row.split(",")[3]) for row in rows)


def pod_rows(gpu_capacity: int) -> list[tuple[int, int, int]]:
    """(vCPU, GPUs, milli per GPU) of every pod, asking for DEMAND_OF_CAPACITY of `gpu_capacity`."""
    cells: list[tuple[int, int, int]] = []
    weights: list[float] = []
    for kind in POD_KINDS:
        milli_total = sum(kind.gpu_milli.values())
        vcpu_total = sum(kind.vcpu.values())
        for milli, milli_weight in kind.gpu_milli.items():
            for vcpu, vcpu_weight in kind.vcpu.items():
                cells.append((vcpu, kind.gpus, milli))
                weights.append(kind.pods_in_openb * milli_weight / milli_total * vcpu_weight / vcpu_total)
    mean_demand = sum(w * gpus * milli / 1000 for w, (_, gpus, milli) in zip(weights, cells, strict=True))
    pods = round(DEMAND_OF_CAPACITY * gpu_capacity * sum(weights) / mean_demand)
    counts = apportion(pods, weights)
    return [cell for cell, count in zip(cells, counts, strict=True) for _ in range(count)]


def render() -> tuple[str, str]:
    """The node and pod CSVs, as text."""
    nodes = node_rows()
    pods = [
        f"syn-pod-{index:04d},{vcpu * 1000},{vcpu * MEMORY_MIB_PER_VCPU},{gpus},{milli},"
        for index, (vcpu, gpus, milli) in enumerate(pod_rows(_gpu_capacity(nodes)))
    ]
    return "\n".join([NODE_HEADER, *nodes]) + "\n", "\n".join([POD_HEADER, *pods]) + "\n"


def write(directory: Path = DATA_DIR) -> tuple[Path, Path]:
    """Write both CSVs into `directory`; returns their paths."""
    nodes_text, pods_text = render()
    directory.mkdir(parents=True, exist_ok=True)
    nodes_path, pods_path = directory / NODES_FILE.name, directory / PODS_FILE.name
    nodes_path.write_text(nodes_text)
    pods_path.write_text(pods_text)
    return nodes_path, pods_path


if __name__ == "__main__":
    for path in write(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA_DIR):
        print(path)
