"""Placement quality and speed on the Alibaba openb traces: every policy, every trace, one run.

    .venv/bin/python benchmarks/sim_bench.py [--data ../shared/data/alibaba-gpu-v2023]
        [--seeds 42-51] [--workers 2] [--traces default,cpu050]
        [--out benchmarks/SIM_RESULTS.md] [--plot docs/sim-default.png]

Writes a markdown section (table of unallocated GPU % at arrived 100 and 130, median of the seeds;
decision times; 10-seed FGD replay time; the machine) and the default-trace plot.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from gpupool.sim.cli import parse_seeds
from gpupool.sim.plot import plot_report
from gpupool.sim.published import published_unallocated
from gpupool.sim.runner import Job, run_jobs, summarise

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "alibaba-gpu-v2023"
POLICIES = [
    "random",
    "dotprod",
    "gpu-clustering",
    "gpu-packing",
    "bestfit",
    "binpack",
    "spread",
    "fgd",
    "ours",
]


def machine() -> dict[str, str]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    uname = subprocess.run(["uname", "-a"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "uname": uname or platform.platform(),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def traces(data: Path, chosen: str | None) -> list[str]:
    names = sorted(
        p.stem.removeprefix("openb_pod_list_") for p in (data / "csv").glob("openb_pod_list_*.csv")
    )
    order = {"default": 0}
    names.sort(key=lambda name: (order.get(name, 1), name))
    return [n for n in names if chosen is None or n in chosen.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seeds", default="42-51")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--traces", default=None)
    parser.add_argument("--policies", default=",".join(POLICIES))
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "SIM_RESULTS.md")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw report as JSON")
    parser.add_argument("--plot", type=Path, default=REPO / "docs" / "sim-default.png")
    args = parser.parse_args()
    seeds = parse_seeds(args.seeds)
    policies = args.policies.split(",")
    nodes = args.data / "csv" / "openb_node_list_gpu_node.csv"
    published_csv = args.data / "fgd-expected-results" / "analysis_allo_discrete.csv"
    started = time.perf_counter()

    # 10-seed FGD replay of default, timed alone first
    tick = time.perf_counter()
    run_jobs(
        [Job(nodes, args.data / "csv" / "openb_pod_list_default.csv", "fgd", s) for s in seeds], args.workers
    )
    fgd_replay_s = time.perf_counter() - tick

    report: dict[str, Any] = {
        "machine": machine(),
        "seeds": seeds,
        "fgd_10_seed_replay_s": fgd_replay_s,
        "traces": {},
    }
    for trace in traces(args.data, args.traces):
        pods = args.data / "csv" / f"openb_pod_list_{trace}.csv"
        jobs = [Job(nodes, pods, policy, seed) for policy in policies for seed in seeds]
        results = run_jobs(jobs, args.workers)
        rows: dict[str, Any] = {}
        for number, policy in enumerate(policies):
            chunk = results[number * len(seeds) : (number + 1) * len(seeds)]
            summary = summarise(chunk)
            times = np.concatenate([r.decision_ms for r in chunk])
            rows[policy] = {
                "unallocated_pct": {str(k): round(v, 3) for k, v in summary.unallocated_pct.items()},
                "sd_100": round(float(np.std([r.curves.unallocated_at(100) for r in chunk])), 3),
                "published": published_unallocated(published_csv, f"openb_pod_list_{trace}", policy)
                if published_csv.is_file()
                else None,
                "decision_ms_median": round(float(np.median(times)), 4),
                "decision_ms_p99": round(float(np.percentile(times, 99)), 4),
                "replay_s_median": round(summary.replay_s_median, 2),
                "allocation_pct_curve": summary.allocation_pct_curve,
            }
        report["traces"][trace] = rows
        print(trace, {p: rows[p]["unallocated_pct"] for p in policies}, flush=True)
        if trace == "default" and args.plot:
            plot_report({"pods": str(pods), "seeds": seeds, "policies": rows}, args.plot)
    report["total_s"] = time.perf_counter() - started
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    args.out.write_text(render(report, policies, " ".join(["benchmarks/sim_bench.py", *sys.argv[1:]])))


def render(report: dict[str, Any], policies: list[str], command: str) -> str:
    m = report["machine"]
    lines = [
        "## Scheduler placement quality (trace simulator)",
        "",
        f"Command: `.venv/bin/python {command}` ({len(report['seeds'])} seeds "
        f"{report['seeds'][0]}-{report['seeds'][-1]}, all policies in the same run, "
        f"{report['total_s'] / 60:.1f} min).",
        f"Machine: `{m['uname']}`, nproc {m['nproc']}, {m['cpu']}; {m['date']}.",
        "",
        "Unallocated GPU % (median of the seeds) at arrived 100% / 130% of GPU capacity; lower is better.",
        "In brackets: the FGD authors' published median (`fgd-expected-results`), where they published one.",
        "",
        "| trace | " + " | ".join(policies) + " | ours - fgd (100 / 130) |",
        "|---|" + "---|" * len(policies) + "---|",
    ]
    for trace, rows in report["traces"].items():
        cells = []
        for policy in policies:
            row = rows[policy]
            cell = f"{row['unallocated_pct']['100']:.2f} / {row['unallocated_pct']['130']:.2f}"
            if row["published"]:
                cell += f" [{row['published'][100]:.2f} / {row['published'][130]:.2f}]"
            cells.append(cell)
        delta = ""
        if "ours" in rows and "fgd" in rows:
            d100 = rows["ours"]["unallocated_pct"]["100"] - rows["fgd"]["unallocated_pct"]["100"]
            d130 = rows["ours"]["unallocated_pct"]["130"] - rows["fgd"]["unallocated_pct"]["130"]
            delta = f"{d100:+.2f} / {d130:+.2f}"
        lines.append(f"| {trace} | " + " | ".join(cells) + f" | {delta} |")
    lines += [
        "",
        "Decision time per pod (filter + score + pick + bind, ms) on the 1,213-node / 6,212-GPU "
        "cluster, all pods of all seeds of `default`:",
        "",
        "| policy | median | p99 |",
        "|---|---|---|",
    ]
    default = report["traces"].get("default", {})
    for policy in policies:
        if policy in default:
            lines.append(
                f"| {policy} | {default[policy]['decision_ms_median']:.3f} | "
                f"{default[policy]['decision_ms_p99']:.3f} |"
            )
    lines += [
        "",
        f"Replay of `default` with fgd, {len(report['seeds'])} seeds on 2 worker processes: "
        f"**{report['fgd_10_seed_replay_s']:.1f} s** wall.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
