"""Trace variants in the openb schema, made the way the FGD paper's variant families were made.

BENCHMARK.md / SOURCE.md describe the paper's families; this module generalises them to any share:

* **sharing share** (of GPU demand, like `gpushareXX`): the GPU pod count stays; random non-sharing
  GPU pods are replaced by resampled sharing pods (or the reverse) until the share is reached;
* **multi-GPU share** (of GPU demand, like `multigpuXX`): resampled multi-GPU pods are appended
  (and, when a sharing share is also asked, sharing pods beside them so that share holds);
* then every GPU class (sharing, whole single-GPU, multi-GPU) is trimmed by the same factor, random
  pods within each class, until GPU demand is at most `max_demand` x the cluster's GPU capacity;
* **CPU-only share** (of all pods, like `cpuXXX`): resampled CPU-only pods are added or random ones
  removed; GPU pods are untouched;
* **GPU-type share** (of GPU pods, like `gpuspecXX`): random unconstrained GPU pods get a model
  constraint; the model is drawn in proportion to the cluster's GPUs of each model that can host
  the pod (enough GPUs, CPU and memory on one node; `spec_weights="nodes"`: its nodes,
  `"models"`: uniform over those models), and the constraint lists the model's family
  (`V100M16|V100M32`: same name up to the memory suffix), as the trace's own constraints do.

Everything is drawn from `numpy.random.default_rng(seed)`; resampled copies keep the source row's
other columns (times, qos) under a new name (`<name>-r<k>`).
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpupool.errors import InvalidRequest
from gpupool.sim.trace import POD_COLUMNS, NodeTable

Row = dict[str, str]
OUTPUT_COLUMNS = (
    *POD_COLUMNS,
    "gpu_spec",
    "qos",
    "pod_phase",
    "creation_time",
    "deletion_time",
    "scheduled_time",
)
MAX_DEMAND_RATIO = 1.3
MILLI_PER_GPU = 1000
SPEC_WEIGHTS = ("gpus", "nodes", "models")
GENERATOR_VERSION = 2  # bump whenever the rows generated for a given spec and seed change


@dataclass(frozen=True)
class VariantSpec:
    """The shares asked for (None = leave as the source has it), the trim ratio and the seed."""

    multi_gpu_share: float | None = None  # multi-GPU pods' share of GPU demand
    gpu_spec_share: float | None = None  # share of GPU pods that carry a model constraint
    sharing_share: float | None = None  # sharing (fractional) pods' share of GPU demand
    cpu_only_share: float | None = None  # CPU-only pods' share of all pods
    max_demand: float = MAX_DEMAND_RATIO  # trim GPU demand above this x capacity
    seed: int = 0
    spec_weights: str = "gpus"  # a constraint's model drawn by GPUs, nodes, or uniform over models

    def __post_init__(self) -> None:
        for name in ("multi_gpu_share", "gpu_spec_share", "sharing_share", "cpu_only_share"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 1.0:
                flag = "--" + name.replace("_", "-")
                raise InvalidRequest(f"{flag}: must be between 0 and 1, got {value}")
        if (self.multi_gpu_share or 0.0) + (self.sharing_share or 0.0) > 1.0:
            raise InvalidRequest("--multi-gpu-share plus --sharing-share must be at most 1")
        if self.cpu_only_share == 1.0:
            raise InvalidRequest("--cpu-only-share: must be below 1 (the GPU pods stay)")
        if self.multi_gpu_share == 1.0:
            raise InvalidRequest("--multi-gpu-share: must be below 1 (multi-GPU pods are added)")
        if self.spec_weights not in SPEC_WEIGHTS:
            raise InvalidRequest(
                f"--spec-weights: one of {', '.join(SPEC_WEIGHTS)}, got {self.spec_weights!r}"
            )
        if self.max_demand <= 0:
            raise InvalidRequest(f"--max-demand: must be positive, got {self.max_demand}")


# ---------------------------------------------------------------------------- pod classes
def gpus(row: Row) -> int:
    return _int(row["num_gpu"])


def demand_milli(row: Row) -> int:
    """GPU demand of a pod in milli-GPU (GPUs x milli per GPU)."""
    return gpus(row) * _int(row["gpu_milli"]) if gpus(row) else 0


def is_sharing(row: Row) -> bool:
    return gpus(row) == 1 and _int(row["gpu_milli"]) < MILLI_PER_GPU


def is_multi(row: Row) -> bool:
    return gpus(row) >= 2


def spec_of(row: Row) -> str:
    text = (row.get("gpu_spec") or "").strip()
    return "" if text == "nan" else text


def _int(text: str | None) -> int:
    return int(float(text)) if text and text.strip() else 0


def measured_shares(rows: Sequence[Row]) -> dict[str, float]:
    """The four shares as the generator defines them, plus GPU demand in GPUs."""
    demand = sum(demand_milli(r) for r in rows)
    gpu_pods = [r for r in rows if gpus(r)]
    return {
        "multi_gpu_share": sum(demand_milli(r) for r in rows if is_multi(r)) / max(demand, 1),
        "sharing_share": sum(demand_milli(r) for r in rows if is_sharing(r)) / max(demand, 1),
        "gpu_spec_share": sum(1 for r in gpu_pods if spec_of(r)) / max(len(gpu_pods), 1),
        "cpu_only_share": sum(1 for r in rows if not gpus(r)) / max(len(rows), 1),
        "gpu_demand": demand / MILLI_PER_GPU,
    }


# ---------------------------------------------------------------------------- generation
class _Copier:
    """Resampled copies of source rows under fresh, unique names."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.copies: dict[str, int] = {}

    def draw(self, pool: Sequence[Row]) -> Row:
        source = pool[int(self.rng.integers(len(pool)))]
        base = source["name"]
        self.copies[base] = self.copies.get(base, 0) + 1
        return {**source, "name": f"{base}-r{self.copies[base]}"}


def generate(rows: Sequence[Row], nodes: NodeTable, spec: VariantSpec) -> list[Row]:
    """A variant of `rows` with the shares of `spec` (see the module docstring for the rules)."""
    rng = np.random.default_rng(spec.seed)
    copier = _Copier(rng)
    pods = [dict(row) for row in rows]
    if not any(gpus(r) for r in pods):
        raise InvalidRequest("the source trace has no GPU pods to make a variant of")
    if spec.sharing_share is not None:
        if spec.multi_gpu_share is None:
            pods = _set_sharing_share(pods, spec.sharing_share, rng, copier)
        elif spec.multi_gpu_share < 1.0:  # sharing's share of the single-GPU demand, multi added next
            share = spec.sharing_share / (1.0 - spec.multi_gpu_share)
            pods = _set_sharing_share(pods, share, rng, copier, singles_only=True)
    if spec.multi_gpu_share is not None:
        pods = _set_multi_share(pods, spec.multi_gpu_share, spec.sharing_share, copier)
    pods = _trim(pods, int(spec.max_demand * nodes.total_gpu_milli), rng)
    if spec.cpu_only_share is not None:
        pods = _set_cpu_only_share(pods, spec.cpu_only_share, rng, copier)
    if spec.gpu_spec_share is not None:
        pods = _set_spec_share(pods, spec.gpu_spec_share, nodes, spec.spec_weights, rng)
    return pods


def _pool(pods: Sequence[Row], test: Callable[[Row], bool], what: str) -> list[Row]:
    chosen = [r for r in pods if test(r)]
    if not chosen:
        raise InvalidRequest(f"the source trace has no {what} to resample")
    return chosen


def _set_sharing_share(
    pods: list[Row], share: float, rng: np.random.Generator, copier: _Copier, singles_only: bool = False
) -> list[Row]:
    """Replace random GPU pods of the other kind by resampled ones until sharing demand / GPU
    demand crosses `share`; the number of GPU pods stays. With `singles_only` (a multi-GPU share is
    asked too) only single-GPU pods take part and the share is of their demand."""

    def member(row: Row) -> bool:
        return gpus(row) == 1 if singles_only else gpus(row) > 0

    def other(row: Row) -> bool:
        return member(row) and not is_sharing(row)

    sharing_pool = _pool(pods, is_sharing, "sharing pods") if share > 0 else []
    other_pool = _pool(pods, other, "whole-GPU pods") if share < 1 else []
    sharing = sum(demand_milli(r) for r in pods if is_sharing(r))
    total = sum(demand_milli(r) for r in pods if member(r))
    members = [i for i, r in enumerate(pods) if member(r)]
    growing = sharing < share * total  # too little sharing: turn whole-GPU pods into sharing pods
    for position in rng.permutation(len(members)):
        index = members[int(position)]
        if (sharing >= share * total) if growing else (sharing <= share * total):
            break
        if is_sharing(pods[index]) == growing:
            continue
        new = copier.draw(sharing_pool if growing else other_pool)
        total += demand_milli(new) - demand_milli(pods[index])
        sharing += demand_milli(new) if growing else -demand_milli(pods[index])
        pods[index] = new
    return pods


def _set_multi_share(
    pods: list[Row], share: float, sharing_share: float | None, copier: _Copier
) -> list[Row]:
    """Append resampled multi-GPU pods until their demand share reaches `share`; if the source
    has more, append resampled single-GPU pods instead. With a sharing share asked too, sharing
    pods are appended whenever that share falls below its target, so both hold."""
    multi = sum(demand_milli(r) for r in pods if is_multi(r))
    sharing = sum(demand_milli(r) for r in pods if is_sharing(r))
    total = sum(demand_milli(r) for r in pods)
    sharing_pool = [r for r in pods if is_sharing(r)]
    whole_pool = [r for r in pods if gpus(r) == 1 and not is_sharing(r)]
    if multi < share * total:
        multi_pool = _pool(pods, is_multi, "multi-GPU pods")
    elif not sharing_pool + whole_pool:
        raise InvalidRequest("the source trace has no single-GPU pods to dilute its multi-GPU pods")
    growing = multi < share * total
    limit = 50 * max(len(pods), 1)  # no share in [0, 1) needs this many copies
    while (multi < share * total) if growing else (multi > share * total):
        limit -= 1
        if limit < 0:
            raise InvalidRequest(f"--multi-gpu-share: cannot reach {share} from this trace")
        if growing:
            new = copier.draw(multi_pool)
        elif sharing_share is None:
            new = copier.draw(sharing_pool + whole_pool)
        else:
            low = sharing < sharing_share * total
            new = copier.draw((sharing_pool if low else whole_pool) or sharing_pool or whole_pool)
        pods.append(new)
        total += demand_milli(new)
        multi += demand_milli(new) if is_multi(new) else 0
        sharing += demand_milli(new) if is_sharing(new) else 0
        while sharing_share and sharing_pool and is_multi(new) and sharing < sharing_share * total:
            extra = copier.draw(sharing_pool)
            pods.append(extra)
            sharing += demand_milli(extra)
            total += demand_milli(extra)
    return pods


def _trim(pods: list[Row], limit_milli: int, rng: np.random.Generator) -> list[Row]:
    """Drop random pods of each GPU class (sharing, whole single-GPU, multi-GPU) until each class
    keeps `limit / demand` of its demand, so the classes' shares hold; CPU-only pods stay."""
    total = sum(demand_milli(r) for r in pods)
    if total <= limit_milli:
        return pods
    factor = limit_milli / total
    drop: set[int] = set()
    for test in (is_sharing, lambda r: gpus(r) == 1 and not is_sharing(r), is_multi):
        members = [i for i, r in enumerate(pods) if test(r)]
        keep_demand = factor * sum(demand_milli(pods[i]) for i in members)
        demand = sum(demand_milli(pods[i]) for i in members)
        for position in rng.permutation(len(members)):
            if demand <= keep_demand:
                break
            index = members[int(position)]
            drop.add(index)
            demand -= demand_milli(pods[index])
    return [r for i, r in enumerate(pods) if i not in drop]


def _set_cpu_only_share(
    pods: list[Row], share: float, rng: np.random.Generator, copier: _Copier
) -> list[Row]:
    """Add resampled CPU-only pods or drop random ones until they are `share` of all pods."""
    gpu_count = sum(1 for r in pods if gpus(r))
    want = round(share * gpu_count / (1.0 - share))
    cpu_index = [i for i, r in enumerate(pods) if not gpus(r)]
    if want > len(cpu_index):
        cpu_pool = _pool(pods, lambda r: not gpus(r), "CPU-only pods")
        return pods + [copier.draw(cpu_pool) for _ in range(want - len(cpu_index))]
    drop = {cpu_index[int(i)] for i in rng.permutation(len(cpu_index))[: len(cpu_index) - want]}
    return [r for i, r in enumerate(pods) if i not in drop]


def family(model: str) -> str:
    """A model's family: its name up to a trailing memory suffix (V100M16 -> V100)."""
    return re.sub(r"M\d+$", "", model)


def _set_spec_share(
    pods: list[Row], share: float, nodes: NodeTable, weights: str, rng: np.random.Generator
) -> list[Row]:
    """Constrain (or free) random GPU pods until `share` of GPU pods carry a model constraint."""
    gpu_index = [i for i, r in enumerate(pods) if gpus(r)]
    want = round(share * len(gpu_index))
    constrained = [i for i in gpu_index if spec_of(pods[i])]
    if want < len(constrained):
        for position in rng.permutation(len(constrained))[: len(constrained) - want]:
            pods[constrained[int(position)]] = {**pods[constrained[int(position)]], "gpu_spec": ""}
        return pods
    models = sorted({m for m in nodes.models if m})
    families = {m: sorted(x for x in models if family(x) == family(m)) for m in models}
    free = [i for i in gpu_index if not spec_of(pods[i])]
    for position in rng.permutation(len(free))[: want - len(constrained)]:
        index = free[int(position)]
        capacity = _hosting_weights(pods[index], nodes, models, weights)
        if capacity.sum() == 0:
            continue  # fits no node at all: leave it unconstrained
        model = models[int(rng.choice(len(models), p=capacity / capacity.sum()))]
        pods[index] = {**pods[index], "gpu_spec": "|".join(families[model])}
    return pods


def _hosting_weights(row: Row, nodes: NodeTable, models: list[str], weights: str) -> np.ndarray:
    """Per model: the GPUs (or nodes, or 1 with `models`) of that model's nodes where this pod fits
    when empty; 0 for a model that cannot host it."""
    need_gpus, cpu, memory = gpus(row), _int(row["cpu_milli"]), _int(row["memory_mib"])
    capacity = np.zeros(len(models))
    for count, node_cpu, node_memory, model in zip(
        nodes.gpus, nodes.cpu_milli, nodes.memory_mib, nodes.models, strict=True
    ):
        if model and count >= need_gpus and node_cpu >= cpu and node_memory >= memory:
            capacity[models.index(model)] += count if weights == "gpus" else 1
    return (capacity > 0) * 1.0 if weights == "models" else capacity


# ---------------------------------------------------------------------------- files
def read_rows(path: Path) -> list[Row]:
    """The raw rows of a pod list CSV (openb schema), in file order."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in POD_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise InvalidRequest(f"{path}: missing columns {', '.join(missing)}")
            return [dict(row) for row in reader]
    except OSError as exc:
        raise InvalidRequest(f"{path}: cannot read ({exc.strerror})") from exc


def write_rows(path: Path, rows: Sequence[Row]) -> None:
    """Write pods in the openb schema, sorted by name (the simulator's submission order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=OUTPUT_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in sorted(rows, key=lambda r: r["name"]):
            writer.writerow({column: row.get(column, "") for column in OUTPUT_COLUMNS})


# ---------------------------------------------------------------------------- sources
DATA_ENV = "GPUPOOL_TRACE_DIR"
DATA_SUBDIR = Path("shared") / "data" / "alibaba-gpu-v2023" / "csv"
NODE_LIST = "openb_node_list_gpu_node.csv"


def trace_dir(explicit: Path | None = None) -> Path | None:
    """Where named traces live: `explicit`, else $GPUPOOL_TRACE_DIR, else the first
    `shared/data/alibaba-gpu-v2023/csv` found from the working directory upwards."""
    if explicit is not None:
        return explicit
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / DATA_SUBDIR).is_dir():
            return folder / DATA_SUBDIR
    return None


def source_path(name: str, data: Path | None = None) -> Path:
    """A pod list by path, or by trace name (`default` -> openb_pod_list_default.csv in the data dir)."""
    path = Path(name)
    if path.suffix == ".csv" or path.is_file():
        if not path.is_file():
            raise InvalidRequest(f"--from: {path}: no such file")
        return path
    folder = trace_dir(data)
    if folder is None:
        raise InvalidRequest(
            f"--from: {name!r} is no file and no trace folder was found (use --data or ${DATA_ENV})"
        )
    named = folder / f"openb_pod_list_{name}.csv"
    if not named.is_file():
        known = sorted(p.stem.removeprefix("openb_pod_list_") for p in folder.glob("openb_pod_list_*.csv"))
        raise InvalidRequest(f"--from: no trace {name!r} in {folder} (known: {', '.join(known) or 'none'})")
    return named


def make_variant(source: Path, nodes: Path, spec: VariantSpec, out: Path) -> dict[str, float]:
    """Read `source`, write the variant to `out`; returns its measured shares and pod count."""
    from gpupool.sim.trace import read_nodes

    if not nodes.is_file():
        raise InvalidRequest(f"--nodes: {nodes}: no such file")
    rows = generate(read_rows(source), read_nodes(nodes), spec)
    write_rows(out, rows)
    return {**measured_shares(rows), "pods": float(len(rows))}
