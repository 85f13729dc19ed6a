"""Control-plane benchmark: claim+release round trips through REST on loopback, and server memory.

Starts real `gpupool serve` processes (simulated pools), measures
  * claim + release round-trip latency p50/p99 with 1 and with 50 concurrent clients (2x4 pool),
  * resident memory of the server with a 125x8 simulated pool, idle and after 1,000 claims.
Prints a Markdown table; `--out FILE` also writes the raw numbers as JSON.

    .venv/bin/python benchmarks/control_plane.py [--seconds 10] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from serverctl import ServerProcess  # noqa: E402


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def round_trips(server: ServerProcess, clients: int, seconds: float) -> list[float]:
    """Seconds per claim+release pair, from every client thread."""
    samples: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker(worker_id: int) -> None:
        with server.client() as http:
            local: list[float] = []
            while time.monotonic() < stop_at:
                start = time.perf_counter()
                claim = http.post("/v1/claims", json={"memory": f"{1 + worker_id % 8}GiB", "compute": 2})
                claim.raise_for_status()
                http.delete(f"/v1/claims/{claim.json()['id']}").raise_for_status()
                local.append(time.perf_counter() - start)
            with lock:
                samples.extend(local)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each latency run")
    parser.add_argument("--out", type=Path, help="write raw numbers as JSON here")
    args = parser.parse_args()
    results: dict[str, object] = {"machine": platform.platform(), "python": platform.python_version()}

    with tempfile.TemporaryDirectory() as home:
        server = ServerProcess(home=Path(home)).start()
        try:
            round_trips(server, 4, 1.0)  # warm-up
            for clients in (1, 50):
                samples = round_trips(server, clients, args.seconds)
                results[f"clients_{clients}"] = {
                    "round_trips": len(samples),
                    "p50_ms": percentile(samples, 0.50) * 1000,
                    "p99_ms": percentile(samples, 0.99) * 1000,
                    "mean_ms": statistics.fmean(samples) * 1000,
                    "throughput_per_s": len(samples) / args.seconds,
                }
        finally:
            server.stop()

    with tempfile.TemporaryDirectory() as home:
        big = ServerProcess(home=Path(home), simulate="125x8xH100-80GB").start()
        try:
            assert big.proc is not None
            time.sleep(1.0)
            idle = rss_bytes(big.proc.pid)
            with big.client() as http:
                for _ in range(1000):
                    http.post("/v1/claims", json={"memory": "8GiB", "compute": 10}).raise_for_status()
                devices = len(http.get("/v1/devices").json()["items"])
            loaded = rss_bytes(big.proc.pid)
            results["pool_125x8"] = {"devices": devices, "rss_idle_mib": idle / 2**20, "rss_1000_claims_mib": loaded / 2**20}
        finally:
            big.stop()

    print("| measurement | value |\n|---|---|")
    for clients in (1, 50):
        row = results[f"clients_{clients}"]
        assert isinstance(row, dict)
        print(
            f"| claim+release round trip, {clients} client(s): p50 / p99 | "
            f"{row['p50_ms']:.1f} ms / {row['p99_ms']:.1f} ms ({row['round_trips']} round trips, "
            f"{row['throughput_per_s']:.0f}/s) |"
        )
    pool = results["pool_125x8"]
    assert isinstance(pool, dict)
    print(
        f"| server RSS, 125x8 pool ({pool['devices']} devices): idle / 1,000 bound claims | "
        f"{pool['rss_idle_mib']:.0f} MiB / {pool['rss_1000_claims_mib']:.0f} MiB |"
    )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
