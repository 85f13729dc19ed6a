"""Decision time of a policy on the 6,212-GPU openb cluster, this tree against a baseline tree.

    .venv/bin/python benchmarks/decision_time.py [--variants default,share60-spec20u] [--seeds 42]
        [--policy ours] [--baseline-python /work/main/.venv/bin/python] [--baseline-src DIR] [--json FILE]

Each (variant, seed) replays the whole arrival stream (no departures) the way the simulator does and
times every decision: wall time and the deciding thread's CPU time (the latter leaves out other
processes on shared cores). With `--baseline-python` the same replay also runs under that
interpreter (whose `gpupool` is the baseline's source), alternating with this tree's so both see the
same machine load, and the two decision sequences are compared: a speed-only change places every
pod on the same node and GPUs. Variants are the robustness matrix's (benchmarks/robustness.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()


def replay(nodes: Path, pods: Path, policy: str, seed: int) -> dict[str, Any]:
    """One replay; only APIs the baseline also has (it runs this function under its interpreter)."""
    from gpupool.scheduler.framework import PluginContext
    from gpupool.scheduler.profiles import build_scheduler
    from gpupool.sim.arrival import arrival_order
    from gpupool.sim.engine import typical_workload
    from gpupool.sim.trace import read_nodes, read_pods

    pod_table = read_pods(pods)
    cluster = read_nodes(nodes).cluster()
    scheduler = build_scheduler(policy, PluginContext(workload=typical_workload(pod_table), seed=seed))
    requests = [pod_table.request(index) for index in range(len(pod_table))]
    wall: list[float] = []
    cpu: list[float] = []
    decisions: list[list[Any]] = []
    for index in arrival_order(pod_table, cluster.total_gpu_milli, seed):
        tick, cpu_tick = time.perf_counter_ns(), time.thread_time_ns()
        decision, _ = scheduler.schedule(requests[index], cluster)
        wall.append((time.perf_counter_ns() - tick) / 1e6)
        cpu.append((time.thread_time_ns() - cpu_tick) / 1e6)
        decisions.append([decision.node, list(decision.gpus)])
    return {"wall": wall, "cpu": cpu, "decisions": decisions}


def summary(times: list[float]) -> str:
    values = np.asarray(times)
    return f"{np.median(values):.3f} / {np.percentile(values, 99):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", default="default,share60-spec20u")
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--policy", default="ours")
    parser.add_argument("--baseline-python", default=None, help="interpreter of the baseline tree")
    parser.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="the baseline's source folder, put first on its PYTHONPATH (else its interpreter's own gpupool)",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers")
    parser.add_argument(
        "--worker", nargs=4, metavar=("NODES", "PODS", "POLICY", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        nodes, pods, policy, seed = args.worker
        json.dump(replay(Path(nodes), Path(pods), policy, int(seed)), sys.stdout)
        return

    sys.path.insert(0, str(HERE.parent))
    from robustness import NODES, REPORTING, TUNING, variant_file
    from sim_bench import machine

    from gpupool.sim.cli import parse_seeds

    known = {variant.name: variant for variant in (*TUNING, *REPORTING)}  # tuning first: its `default`
    names = args.variants.split(",")
    unknown = [name for name in names if name not in known]
    if unknown:
        parser.error(f"unknown variants {unknown}; known: {sorted(known)}")
    seeds = parse_seeds(args.seeds)
    m = machine()
    print(f"Machine: `{m['uname']}`, nproc {m['nproc']}, {m['cpu']}; {m['date']}.", flush=True)
    head = "| variant | seed | pods | this tree ms p50 / p99 [CPU] |"
    if args.baseline_python:
        head += " baseline ms p50 / p99 [CPU] | same placements |"
    print(head, flush=True)
    print("|" + "---|" * (head.count("|") - 1), flush=True)
    raw: list[dict[str, Any]] = []
    for name in names:
        pods = variant_file(known[name])
        for seed in seeds:
            runs: dict[str, dict[str, Any]] = {}
            interpreters = {"new": sys.executable}
            if args.baseline_python:
                interpreters["base"] = args.baseline_python
            for label, python in interpreters.items():
                command = [python, str(HERE), "--worker", str(NODES), str(pods), args.policy, str(seed)]
                env = dict(os.environ)
                if label == "base" and args.baseline_src:
                    env["PYTHONPATH"] = str(args.baseline_src.resolve())
                done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
                if done.returncode != 0:
                    raise SystemExit(f"{label} replay failed:\n{done.stderr[-2000:]}")
                runs[label] = json.loads(done.stdout)
            new = runs["new"]
            row = f"| {name} | {seed} | {len(new['cpu'])} | {summary(new['wall'])} [{summary(new['cpu'])}] |"
            record: dict[str, Any] = {
                "variant": name,
                "seed": seed,
                "new": {k: new[k] for k in ("wall", "cpu")},
            }
            if "base" in runs:
                base = runs["base"]
                pairs = zip(new["decisions"], base["decisions"], strict=False)
                differ = [i for i, (a, b) in enumerate(pairs) if a != b]
                if len(new["decisions"]) != len(base["decisions"]):
                    differ.append(min(len(new["decisions"]), len(base["decisions"])))
                same = f"no: {len(differ)} differ, first at pod {differ[0]}" if differ else "yes"
                row += f" {summary(base['wall'])} [{summary(base['cpu'])}] | {same} |"
                record["base"] = {k: base[k] for k in ("wall", "cpu")}
                record["same"] = not differ
            print(row, flush=True)
            raw.append(record)
    if args.json:
        args.json.write_text(json.dumps(raw))


if __name__ == "__main__":
    main()
