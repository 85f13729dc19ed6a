"""Kubernetes benchmark: pods/s placed through gpupool's scheduler extender, against the same
control plane's kube-scheduler without an extender in the same run (the baseline).

Starts a real control plane (etcd, kube-apiserver, kube-scheduler v1.20.2 from
scripts/k8s-build.sh), `gpupool serve --kube` with its webhook, a kube-scheduler with gpupool as
its extender, and a second kube-scheduler (`plain-scheduler`) without one. Each trial creates
PODS pods (8 client threads) on NODES Ready nodes of 8 simulated H100s and times first create
-> last pod bound:
  * gpupool: pods asking for a fractional vGPU (10GiB, 25% SMs): webhook + extender filter,
    prioritize and bind (claim recorded durably, Binding with the claim's annotations);
  * plain: the same pods without the vGPU (and without gpupool's env), `plain-scheduler`.
Pods are deleted between trials (their claims released). Writes Markdown to `--out`.

    .venv/bin/python benchmarks/kube_bench.py [--nodes 10] [--pods 100] [--trials 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "kube"))

from controlplane import K8S_VERSION, unavailable_reason, wait_for  # noqa: E402
from kubeenv import KubeEnv, start_env  # noqa: E402

FRACTION = {"gpupool.io/memory": "10GiB", "gpupool.io/compute": "25"}
PLAIN = "plain-scheduler"


def trial(env: KubeEnv, group: str, pods: int, through_gpupool: bool) -> float:
    """Seconds from the first create to the last pod bound."""
    kube = env.kube
    namespace = kube.namespace("bench")

    def create(i: int) -> None:
        if through_gpupool:
            kube.create_pod(namespace, f"p{i}", group, vgpus=1, annotations=FRACTION)
        else:
            kube.create_pod(namespace, f"p{i}", group, vgpus=0, scheduler_name=PLAIN)

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(pods)))
    wait_for(
        f"{pods} pods bound",
        lambda: sum(bool(p["spec"].get("nodeName")) for p in kube.pods(namespace)) == pods,
        timeout_s=600,
        every_s=0.02,
    )
    elapsed = time.monotonic() - started
    for pod in kube.pods(namespace):
        kube.delete_pod(namespace, pod["metadata"]["name"])
    wait_for("claims released", lambda: not env.gpupool.pod_claims(), timeout_s=120, every_s=0.1)
    return elapsed


def etcd_version() -> str:
    found = subprocess.run(["etcd", "--version"], capture_output=True, text=True, check=False).stdout
    return found.splitlines()[0] if found else "etcd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "KUBE_RESULTS.md")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"kube_bench: {reason}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    root = Path(tempfile.mkdtemp(prefix="gpupool-kube-bench-"))
    env = start_env(root, ("--log-level", "warning"))
    try:
        env.cp.start_scheduler(None, scheduler_name=PLAIN)
        group, _nodes = env.node_group(["8xH100-80GB"] * args.nodes)
        results: dict[str, list[float]] = {"gpupool": [], "plain": []}
        for _ in range(args.trials):  # alternate, so both see the same machine load
            results["gpupool"].append(trial(env, group, args.pods, True))
            results["plain"].append(trial(env, group, args.pods, False))
    finally:
        env.stop()
    rate = {name: args.pods / statistics.median(times) for name, times in results.items()}
    command = (
        f"python benchmarks/kube_bench.py --nodes {args.nodes} --pods {args.pods} --trials {args.trials}"
    )
    lines = [
        "# Kubernetes: pods placed through gpupool's extender",
        "",
        f"- command: `{command}`",
        f"- machine: {platform.node()}, {os.cpu_count()} CPU(s), {platform.platform()}, "
        f"Python {platform.python_version()} (load average before: {load})",
        f"- date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- control plane: {etcd_version()}, kube-apiserver + kube-scheduler v{K8S_VERSION} (no kubelet)",
        f"- {args.nodes} nodes x 8 simulated H100-80GB; {args.pods} pods per trial, created by 8 threads",
        "",
        "| path | trials (s, first create -> last bound) | median pods/s |",
        "|---|---|---:|",
    ]
    for name, label in (
        ("gpupool", "gpupool extender (webhook, filter, prioritize, bind)"),
        ("plain", "kube-scheduler alone"),
    ):
        times = ", ".join(f"{t:.2f}" for t in results[name])
        lines.append(f"| {label} | {times} | {rate[name]:.1f} |")
    lines += ["", f"gpupool / plain: {rate['gpupool'] / rate['plain']:.2f}", ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
