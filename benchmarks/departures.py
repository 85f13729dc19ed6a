"""Replay the openb pods *with departures* through the live pool (queue, releases, no preemption).

    .venv/bin/python benchmarks/departures.py [--compress 600] [--cluster-fraction 4]
        [--policies fgd,bestfit,ours] [--workers 2] [--limit N]
        [--out benchmarks/DEPARTURES_RESULTS.md] [--plot docs/replay-departures.png]

The openb pod list carries creation and deletion times. Each GPU pod becomes a claim (whole GPUs,
or compute percent = milli / 10 for a share) that arrives at creation_time / COMPRESS and, once
bound, holds its devices for its recorded lifetime (deletion - creation), uncompressed: compressing
arrivals only raises the offered load COMPRESS-fold. At the trace's own pace the 8,152 pods never
hold more than 66 GPUs at once, and even with arrivals squeezed into minutes they stay under 4,700,
so the replay runs on every CLUSTER_FRACTION-th node of each node shape of the openb cluster (same
model and shape mix). CPU-only pods are left out: the live pool has no CPU dimension (it also
ignores the pods' CPU and memory requests). Each policy runs in its own process through a fresh
in-process pool (SQLite store in a temporary folder); the pool's audit trail says when a claim
was bound, the clock is simulated.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from sim_bench import machine

from gpupool.model import ClaimSpec, Device
from gpupool.pool.replay import ReplayClaim, ReplayResult, replay
from gpupool.sim.variants import read_rows

REPO = Path(__file__).resolve().parents[1]
CSV = REPO.parent / "shared" / "data" / "alibaba-gpu-v2023" / "csv"
GIB = 1024**3
MEMORY_GIB = {"V100M32": 32, "A10": 24, "G3": 32}  # others 16 GiB; memory follows compute here
POLICIES = ("fgd", "bestfit", "ours")


def sub_cluster(nodes_csv: Path, fraction: int) -> list[Device]:
    """Every `fraction`-th node (by name) of each (model, GPUs, CPU, memory) shape, first one included."""
    rows = sorted(read_node_rows(nodes_csv), key=lambda r: r["sn"])
    seen: Counter[tuple[str, ...]] = Counter()
    devices: list[Device] = []
    for row in rows:
        shape = (row["model"], row["gpu"], row["cpu_milli"], row["memory_mib"])
        if seen[shape] % fraction == 0 and int(row["gpu"]) > 0:
            memory = MEMORY_GIB.get(row["model"], 16) * GIB
            devices += [
                Device(f"{row['sn']}-gpu{i}", row["sn"], i, row["model"], memory)
                for i in range(int(row["gpu"]))
            ]
        seen[shape] += 1
    return devices


def read_node_rows(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def claims_of(pods_csv: Path, compress: float, limit: int | None = None) -> list[ReplayClaim]:
    """GPU pods as claims: arrival = creation / compress, holding time = deletion - creation."""
    claims = []
    for row in sorted(read_rows(pods_csv), key=lambda r: (float(r["creation_time"]), r["name"])):
        gpus, milli = int(row["num_gpu"]), int(row["gpu_milli"])
        if gpus == 0:
            continue
        spec = (
            ClaimSpec(gpus=gpus) if milli >= 1000 else ClaimSpec(gpus=1, compute_percent=max(1, milli // 10))
        )
        hold = max(1.0, float(row["deletion_time"]) - float(row["creation_time"]))
        claims.append(ReplayClaim(float(row["creation_time"]) / compress, hold, spec))
    return claims[:limit] if limit else claims


def run_one(args: tuple[list[ReplayClaim], list[Device], str, int]) -> ReplayResult:
    claims, devices, policy, samples = args
    with tempfile.TemporaryDirectory(
        prefix="gpupool-replay-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None
    ) as tmp:

        def progress(done: int, total: int) -> None:
            if done % 500 == 0 or done == total:
                print(f"  {policy}: {done}/{total} claims arrived", flush=True)

        return replay(claims, devices, policy, Path(tmp) / "pool.db", samples, progress)


def render(
    results: Sequence[ReplayResult], args: argparse.Namespace, devices: int, claims: int, wall_min: float
) -> list[str]:
    m = machine()
    command = " ".join(["benchmarks/departures.py", *sys.argv[1:]])
    first = results[0]
    span_h = float(first.times_s[-1]) / 3600 if first.times_s.size else 0.0
    busy = first.times_s >= args.busy_from * first.times_s[-1]
    lines = [
        "## Replay with departures through the live pool (issue 13)",
        "",
        f"Command: `.venv/bin/python {command}` ({wall_min:.1f} min; one process per policy, 2 at a time).",
        f"Machine: `{m['uname']}`, nproc {m['nproc']}, {m['cpu']}; {m['date']}.",
        "",
        f"{claims} GPU pods of `{args.pods.name}` as claims on {devices} GPUs (every "
        f"{args.cluster_fraction}th node of each openb node shape); arrivals at creation time / "
        f"{args.compress:g} ({span_h:.1f} simulated hours); once bound a claim holds its devices for "
        "its recorded lifetime. Through `PoolService` (create_claim binds now or queues; every release "
        "runs the queue pass), no quotas, so no preemption.",
        "",
        f"Busy part = the last {100 * (1 - args.busy_from):.0f} % of the time ({int(busy.sum())} "
        "samples): mean GPU allocation rate (% of GPU compute), mean and peak claims waiting. Queueing "
        "delay (arrival to bound) over every claim of the replay; claims still waiting at the end; "
        "placement decision wall time (ms, the pool's observer, same run).",
        "",
        "| policy | allocation % | waiting mean / peak | delay p50 / p99 (s) | mean delay (s) "
        "| never bound | decision ms p50 / p99 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        delays = r.delays_s if r.delays_s.size else np.zeros(1)
        lines.append(
            f"| {r.policy} | {r.allocation_pct[busy].mean():.2f} | "
            f"{r.waiting[busy].mean():.1f} / {r.waiting.max()} | "
            f"{np.percentile(delays, 50):.0f} / {np.percentile(delays, 99):.0f} | {delays.mean():.0f} | "
            f"{r.never_bound} | {np.median(r.decision_ms):.2f} / {np.percentile(r.decision_ms, 99):.2f} |"
        )
    lines += [
        "",
        "Over time (busy part): allocation % / claims waiting / delay p50 / p99 (s) of the claims bound "
        "since the previous row.",
        "",
        "| hour | " + " | ".join(r.policy for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]
    indices = np.flatnonzero(busy)
    for i in indices[:: max(1, len(indices) // 12)]:
        cells = [
            f"{r.allocation_pct[i]:.1f} / {r.waiting[i]} / {r.delay_p50_s[i]:.0f} / {r.delay_p99_s[i]:.0f}"
            for r in results
        ]
        lines.append(f"| {first.times_s[i] / 3600:.2f} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def plot(results: Sequence[ReplayResult], out: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    panels: list[tuple[Any, str, str]] = [
        (axes[0][0], "allocation_pct", "GPU allocation rate (%)"),
        (axes[0][1], "waiting", "claims waiting"),
        (axes[1][0], "delay_p50_s", "queueing delay p50 (s)"),
        (axes[1][1], "delay_p99_s", "queueing delay p99 (s)"),
    ]
    for axis, column, label in panels:
        for index, r in enumerate(results):
            axis.plot(r.times_s / 3600, getattr(r, column), label=r.policy, color=f"C{index}", linewidth=1.2)
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    for axis in axes[1]:
        axis.set_xlabel("simulated hours")
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pods", type=Path, default=CSV / "openb_pod_list_default.csv")
    parser.add_argument("--nodes", type=Path, default=CSV / "openb_node_list_gpu_node.csv")
    parser.add_argument("--compress", type=float, default=600.0)
    parser.add_argument("--cluster-fraction", type=int, default=4)
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument(
        "--busy-from", type=float, default=0.6, help="report from this fraction of the time on"
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N claims (a quick look)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "DEPARTURES_RESULTS.md")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "replay-departures.png")
    args = parser.parse_args()
    devices = sub_cluster(args.nodes, args.cluster_fraction)
    claims = claims_of(args.pods, args.compress, args.limit)
    policies = args.policies.split(",")
    print(f"{len(claims)} claims on {len(devices)} GPUs, policies {policies}", flush=True)
    started = time.perf_counter()
    jobs = [(claims, devices, policy, args.samples) for policy in policies]
    if args.workers > 1:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            results = list(pool.map(run_one, jobs))
    else:
        results = [run_one(job) for job in jobs]
    wall_min = (time.perf_counter() - started) / 60
    lines = render(results, args, len(devices), len(claims), wall_min)
    args.out.write_text("\n".join(lines) + "\n")
    if args.plot:
        title = f"openb default with departures, {len(devices)} GPUs, arrivals x{args.compress:g}"
        plot(results, args.plot, title)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
