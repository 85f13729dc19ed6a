"""Placement cost per claim on the live pool's path, in process, this tree against a baseline tree.

    .venv/bin/python benchmarks/live_placement.py [--pool 2x8xH100-80GB] [--claims 4000] [--held 50]
        [--policy default] [--baseline-python /work/main/.venv/bin/python] [--baseline-src DIR]

Drives what `PoolService` does for a claim, without HTTP or the store: the scheduler's `LiveCluster`
(the incrementally updated snapshot) and `FrameworkPlacer.place`, then the commit as the pool sees
it (the placement assumed, the device totals changed, the assumption forgotten, the devices
reread); `--held` claims stay bound (50 clients each holding one), the oldest is released when a new
one binds. Claims are fractional: 1-8 GiB and 1-5 % compute, as `benchmarks/control_plane.py`'s
clients send. Reports the placement's wall and thread-CPU time per claim (p50 / p99 / mean) and the
whole claim-and-release bookkeeping per claim; with a baseline, both run alternately in the same run
and their placements are compared (a speed-only change places every claim on the same devices).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()


def churn(pool: str, claims: int, held: int, policy: str) -> dict[str, Any]:
    """The claim loop; only APIs the baseline also has (it runs under the baseline's interpreter)."""
    from gpupool.devices.simulated import SimulatedBackend
    from gpupool.model import ClaimSpec
    from gpupool.scheduler.live import FrameworkPlacer, LiveCluster

    devices = SimulatedBackend(pool).devices()
    allocated: dict[str, tuple[int, int]] = {}
    placer = FrameworkPlacer(policy)
    live = LiveCluster(devices, lambda uuid: allocated.get(uuid, (0, 0)), placer.interner)
    bound: deque[tuple[Any, ...]] = deque()
    place_wall, place_cpu, total_cpu, placed = [], [], [], []

    def commit(bindings: tuple[Any, ...], sign: int) -> None:
        for binding in bindings:
            memory, compute = allocated.get(binding.device_uuid, (0, 0))
            allocated[binding.device_uuid] = (
                memory + sign * binding.memory_bytes,
                compute + sign * binding.compute_percent,
            )
        live.refresh([binding.device_uuid for binding in bindings])

    for index in range(claims):
        spec = ClaimSpec(memory_bytes=(1 + index % 8) << 30, compute_percent=1 + index % 5)
        tick, cpu_tick = time.perf_counter_ns(), time.thread_time_ns()
        result = placer.place(spec, live)
        place_wall.append((time.perf_counter_ns() - tick) / 1e6)
        place_cpu.append((time.thread_time_ns() - cpu_tick) / 1e6)
        if not result.ok:
            raise SystemExit(f"claim {index} did not fit: {result.reason}")
        live.assume(result.bindings)
        commit(result.bindings, +1)
        live.forget(result.bindings)
        bound.append(result.bindings)
        if len(bound) > held:
            commit(bound.popleft(), -1)
        total_cpu.append((time.thread_time_ns() - cpu_tick) / 1e6)
        placed.append([binding.device_uuid for binding in result.bindings])
    return {"wall": place_wall, "cpu": place_cpu, "total_cpu": total_cpu, "placed": placed}


def pool_churn(pool: str, round_trips: int, clients: int, policy: str) -> dict[str, Any]:
    """`clients` concurrent claim+release loops on a real `PoolService` (SQLite store, synchronous=
    FULL) in one event loop, as the API's routes call it: process CPU per round trip, and the
    placement's own thread CPU per claim."""
    import asyncio
    import tempfile

    from gpupool.devices.simulated import SimulatedBackend
    from gpupool.model import ClaimSpec
    from gpupool.model.tenant import ADMIN, Tenant
    from gpupool.pool import PoolService
    from gpupool.scheduler import make_placer
    from gpupool.store import Store

    placer = make_placer(policy)
    place_cpu: list[float] = []
    original = placer.place

    def timed(*args: Any, **kwargs: Any) -> Any:
        tick = time.thread_time_ns()
        try:
            return original(*args, **kwargs)
        finally:
            place_cpu.append((time.thread_time_ns() - tick) / 1e6)

    placer.place = timed  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as folder:
        service = PoolService(Store(Path(folder) / "pool.db"), SimulatedBackend(pool), placer)
        service.start()
        admin = Tenant(ADMIN)
        done = 0

        async def client() -> None:
            nonlocal done
            while done < round_trips:
                done += 1
                claim = await service.create_claim_async(
                    admin, ClaimSpec(memory_bytes=1 << 30, compute_percent=2)
                )
                await service.release_async(admin, claim.id)

        async def run() -> float:
            started = time.process_time()
            await asyncio.gather(*(client() for _ in range(clients)))
            return time.process_time() - started

        cpu = asyncio.run(run())
        service.store.close()
    return {"cpu_per_round_trip_ms": cpu / done * 1e3, "place_cpu": place_cpu, "round_trips": done}


def run_in(python: str, src: Path | None, argv: list[str]) -> Any:
    """Run this file's worker under `python` (with `src` first on its path) and read its JSON."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src.resolve())
    done = subprocess.run([python, str(HERE), *argv], capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{python} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def line(name: str, run: dict[str, Any]) -> str:
    def stats(values: list[float]) -> str:
        array = np.asarray(values) * 1000.0  # microseconds
        return f"{np.median(array):.0f} / {np.percentile(array, 99):.0f} / {array.mean():.0f}"

    return f"| {name} | {stats(run['wall'])} | {stats(run['cpu'])} | {stats(run['total_cpu'])} |"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pool", default="2x8xH100-80GB")
    parser.add_argument("--claims", type=int, default=4000)
    parser.add_argument("--held", type=int, default=50)
    parser.add_argument("--policy", default="default")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each tree")
    parser.add_argument("--baseline-python", default=None)
    parser.add_argument("--baseline-src", type=Path, default=None)
    parser.add_argument(
        "--through-pool",
        action="store_true",
        help="instead: --held concurrent claim+release loops through PoolService and its SQLite store",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        work = pool_churn if args.through_pool else churn
        json.dump(work(args.pool, args.claims, args.held, args.policy), sys.stdout)
        return
    sys.path.insert(0, str(HERE.parent))
    from sim_bench import machine

    m = machine()
    print(f"Machine: `{m['uname']}`, nproc {m['nproc']}, {m['cpu']}; {m['date']}.")
    print(f"Pool {args.pool}, {args.claims} claims, {args.held} held, policy {args.policy}.")
    worker = ["--worker", "--pool", args.pool, "--claims", str(args.claims), "--held", str(args.held)]
    worker += ["--policy", args.policy] + (["--through-pool"] if args.through_pool else [])
    if args.through_pool:
        print("| tree | process CPU per claim+release ms | placement CPU per claim us p50 / mean |")
        print("|---|---|---|")
    else:
        print(
            "| tree | place wall us p50 / p99 / mean | place CPU us p50 / p99 / mean | claim+release CPU us |"
        )
        print("|---|---|---|---|")
    runs: dict[str, list[dict[str, Any]]] = {"this tree": [], "baseline": []}
    for _ in range(args.rounds):
        runs["this tree"].append(run_in(sys.executable, None, worker))
        if args.baseline_python:
            runs["baseline"].append(run_in(args.baseline_python, args.baseline_src, worker))
    for name, done in runs.items():
        for run in done:
            if args.through_pool:
                place = np.asarray(run["place_cpu"]) * 1000.0
                cost = f"{run['cpu_per_round_trip_ms']:.2f}"
                print(f"| {name} | {cost} | {np.median(place):.0f} / {place.mean():.0f} |", flush=True)
            else:
                print(line(name, run), flush=True)
    if runs["baseline"] and not args.through_pool:
        same = all(
            run["placed"] == runs["baseline"][0]["placed"] for run in (*runs["this tree"], *runs["baseline"])
        )
        print(f"\nSame placements in every run: {'yes' if same else 'no'}.")


if __name__ == "__main__":
    main()
