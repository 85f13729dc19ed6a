"""What the VM rules cost: decision time with and without them, measured in the same run.

    .venv/bin/python benchmarks/vm_bench.py [--data ../shared/data/alibaba-gpu-v2023] [--rounds 5]

1. The simulator (no VMs): `fgd` on the 1,213-node openb cluster, one seed of `default`, replayed
   with the profile's slot filters and with none; rounds alternate so machine noise hits both.
2. A VM host: a placement of an A100-4C vGPU, a passthrough GPU and a host claim on a 16-GPU host
   whose GPUs carry VM traits, against the same loads without traits.
3. The whole attach + detach through `VmManager` on libvirt's test driver (tests/vms/data/host.xml).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "vms"))

from gpupool.model import ClaimSpec, Device, GiB, Tenant  # noqa: E402
from gpupool.model.vm import PASSTHROUGH_LABEL, VGPU_PROFILE_LABEL, VM_DOMAIN_LABEL  # noqa: E402
from gpupool.scheduler import DeviceLoad, make_placer  # noqa: E402
from gpupool.scheduler.contract import DeviceTraits  # noqa: E402
from gpupool.scheduler.framework import PluginContext  # noqa: E402
from gpupool.scheduler.profiles import build_scheduler, resolve  # noqa: E402
from gpupool.sim.arrival import arrival_order  # noqa: E402
from gpupool.sim.engine import typical_workload  # noqa: E402
from gpupool.sim.trace import read_nodes, read_pods  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "alibaba-gpu-v2023" / "csv"


def sim_round(data: Path, with_rules: bool, seed: int = 42) -> list[float]:
    nodes = read_nodes(data / "openb_node_list_gpu_node.csv")
    pods = read_pods(data / "openb_pod_list_default.csv")
    profile = resolve("fgd")
    if not with_rules:
        profile = dataclasses.replace(profile, slot_filters=())
    target = typical_workload(pods)
    scheduler = build_scheduler(profile, PluginContext(workload=target, seed=seed))
    cluster = nodes.cluster()
    requests = [pods.request(i) for i in range(len(pods))]
    times = []
    for index in arrival_order(pods, cluster.total_gpu_milli, seed):
        tick = time.perf_counter_ns()
        scheduler.schedule(requests[index], cluster)
        times.append((time.perf_counter_ns() - tick) / 1e6)
    return times


def vm_host_loads(traits: bool) -> list[DeviceLoad]:
    loads = []
    for index in range(16):
        device = Device(f"GPU-{index}", "vmhost", index, "A100-40GB", 40 * GiB)
        hosted = "A100-4C" if index < 4 else ""
        memory, compute = (8 * GiB, 20) if hosted else (0, 0)
        trait = DeviceTraits(
            profiles={"A100-4C": 8 if hosted else 10, "A100-8C": 0 if hosted else 5},
            hosted_profile=hosted,
            passthrough_capable=True,
            vm_only=bool(hosted),
            label=f"0000:{index:02x}:00.0",
        )
        loads.append(DeviceLoad(device, memory, compute, traits=trait if traits else None))
    return loads


SPECS = {
    "vGPU A100-4C": ClaimSpec(
        memory_bytes=4 * GiB,
        compute_percent=10,
        labels={VM_DOMAIN_LABEL: "vm", VGPU_PROFILE_LABEL: "A100-4C"},
    ),
    "passthrough": ClaimSpec(labels={VM_DOMAIN_LABEL: "vm", PASSTHROUGH_LABEL: "true"}),
    "host claim": ClaimSpec(memory_bytes=4 * GiB),
}


def vm_round(traits: bool, repeats: int = 200) -> dict[str, list[float]]:
    placer = make_placer("default")
    loads = vm_host_loads(traits)
    times: dict[str, list[float]] = {name: [] for name in SPECS}
    for _ in range(repeats):
        for name, spec in SPECS.items():
            tick = time.perf_counter_ns()
            result = placer.place(spec, loads, learn=False)
            times[name].append((time.perf_counter_ns() - tick) / 1e6)
            assert result.ok, result.reason
    return times


def attach_round(repeats: int = 20) -> list[float]:
    from vmhost import MDEV_GPU, make_host
    from vmpool import ADMIN_TENANT, VmPool

    with tempfile.TemporaryDirectory() as scratch:
        host = make_host(Path(scratch) / "host")
        vp = VmPool.open(host, Path(scratch) / "pool.db", resync_s=3600)
        times = []
        try:
            for _ in range(repeats):
                tick = time.perf_counter_ns()
                vp.manager.attach(ADMIN_TENANT, "build-1", profile="A100-4C", device=MDEV_GPU)
                vp.manager.detach(Tenant("admin"), "build-1")
                times.append((time.perf_counter_ns() - tick) / 1e6)
        finally:
            vp.close()
        return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def p99(values: list[float]) -> float:
    return sorted(values)[int(0.99 * (len(values) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA.parent)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = args.data / "csv"
    sim: dict[bool, list[float]] = {True: [], False: []}
    vm: dict[bool, dict[str, list[float]]] = {True: {n: [] for n in SPECS}, False: {n: [] for n in SPECS}}
    for _ in range(args.rounds):
        for with_rules in (False, True):
            sim[with_rules] += sim_round(data, with_rules)
            for name, values in vm_round(with_rules).items():
                vm[with_rules][name] += values
    attach = attach_round()
    print("| what | without VM rules, median / p99 ms | with VM rules, median / p99 ms |")
    print("|---|---|---|")
    row = "| {} | {:.3f} / {:.3f} | {:.3f} / {:.3f} |"
    print(
        row.format(
            "sim: fgd decision, openb default",
            median(sim[False]),
            p99(sim[False]),
            median(sim[True]),
            p99(sim[True]),
        )
    )
    for name in SPECS:
        off, on = vm[False][name], vm[True][name]
        print(row.format(f"16-GPU VM host: {name}", median(off), p99(off), median(on), p99(on)))
    what = "attach + detach of an A100-4C through VmManager (test driver)"
    print(f"\n{what}: median {median(attach):.1f} ms, p99 {p99(attach):.1f} ms")


if __name__ == "__main__":
    main()
