"""What open dashboards cost the server, and the claims made meanwhile, on a large pool.

For this checkout and, in the same run, a baseline interpreter (`--baseline-python`, e.g. a wrapper
that runs main's `src/`), it serves `--simulate NODESx8xH100-80GB` (default 1,000 nodes), holds 200
claims of two tenants, and then for each number of open dashboard streams (`/v1/stream`, default
0 and 4: two the admin's, two a tenant's, each read in full by its own thread) makes one
claim+release round trip every 0.25 s for `--seconds` and reports
  * the server process's CPU seconds per second of wall time,
  * claim+release p50 / p90 (ms) as the client saw them,
  * stream messages received and their bytes (first messages not counted).
Prints a Markdown table; `--out FILE` also writes the numbers as JSON.

    .venv/bin/python benchmarks/stream_cost.py [--baseline-python /tmp/base-python] [--nodes 1000]
        [--seconds 20] [--streams 0,4] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

from control_plane import cpu_seconds  # noqa: E402 (this folder: the script's own path entry)

from serverctl import ADMIN_TOKEN, ServerProcess  # noqa: E402 (after the path)

PACE_S = 0.25
HELD = 200


class StreamReader(threading.Thread):
    """Reads one dashboard stream until told to stop; counts the messages after the first."""

    def __init__(self, server: ServerProcess, token: str) -> None:
        super().__init__(daemon=True)
        self.server, self.token = server, token
        self.opened = threading.Event()
        self.counting = False
        self.messages = self.bytes = 0
        self.stop = False

    def run(self) -> None:
        with self.server.client(self.token) as http, http.stream("GET", "/v1/stream", timeout=300) as stream:
            size = 0
            for line in stream.iter_lines():
                if self.stop:
                    return
                if line.startswith("data: "):
                    size += len(line)
                elif line == "" and size:
                    if self.opened.is_set() and self.counting:
                        self.messages += 1
                        self.bytes += size
                    self.opened.set()
                    size = 0


def round_trips(http: httpx.Client, seconds: float) -> list[float]:
    """Claim+release every PACE_S for `seconds`; the round trips' times (ms)."""
    times = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        made = http.post("/v1/claims", json={"memory": "4GiB", "compute": 5})
        assert made.status_code == 201, made.text
        assert http.delete(f"/v1/claims/{made.json()['id']}").status_code == 200
        took = time.perf_counter() - started
        times.append(took * 1000)
        time.sleep(max(0.0, PACE_S - took))
    return times


def measure(
    python: str, label: str, nodes: int, stream_counts: list[int], seconds: float
) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as home:
        server = ServerProcess(home=Path(home), simulate=f"{nodes}x8xH100-80GB", python=python)
        server.start(timeout_s=240)
        try:
            assert server.proc is not None
            with server.client() as admin:
                tenant = admin.post("/v1/tenants", json={"name": "team-a"}).json()["token"]
                with server.client(tenant) as team:
                    for index in range(HELD):  # half the admin's, half team-a's (masked on its streams)
                        body = {"memory": f"{1 + index % 8}GiB", "compute": 1 + index % 5}
                        assert (team if index % 2 else admin).post("/v1/claims", json=body).status_code == 201
                for count in stream_counts:
                    # streams alternate between the admin and the tenant (at most four each)
                    readers = [StreamReader(server, (ADMIN_TOKEN, tenant)[i % 2]) for i in range(count)]
                    for reader in readers:
                        reader.start()
                        if not reader.opened.wait(timeout=120):
                            raise RuntimeError("a stream sent no first message in 120 s")
                    time.sleep(2.5)  # a telemetry sample after the first messages
                    for reader in readers:
                        reader.counting = True
                    cpu_before, wall_before = cpu_seconds(server.proc.pid), time.monotonic()
                    times = round_trips(admin, seconds)
                    cpu = (cpu_seconds(server.proc.pid) - cpu_before) / (time.monotonic() - wall_before)
                    for reader in readers:
                        reader.stop = True
                    cuts = statistics.quantiles(times, n=10)
                    rows.append(
                        {
                            "label": label,
                            "nodes": nodes,
                            "streams": count,
                            "server_cpu_per_s": cpu,
                            "p50_ms": statistics.median(times),
                            "p90_ms": cuts[8],
                            "round_trips": len(times),
                            "messages": sum(r.messages for r in readers),
                            "kib": sum(r.bytes for r in readers) / 1024,
                        }
                    )
                    print(f"  {label}: {count} streams: {rows[-1]}", flush=True)
                    time.sleep(1.0)  # the readers notice `stop` on their next message
        finally:
            server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline-python", help="interpreter of a baseline checkout, measured too")
    parser.add_argument("--baseline-name", default="baseline")
    parser.add_argument("--nodes", type=int, default=1000, help="nodes of 8 GPUs")
    parser.add_argument("--seconds", type=float, default=20.0, help="claim+release time per row")
    parser.add_argument("--streams", default="0,4", help="open dashboard streams per row, e.g. 0,4")
    parser.add_argument("--out", type=Path, help="write the numbers as JSON here")
    args = parser.parse_args()
    counts = [int(part) for part in args.streams.split(",")]
    if any(not 0 <= count <= 8 for count in counts):
        parser.error("--streams: each count must be 0..8 (four streams per tenant, two tenants)")
    print(f"load average before: {os.getloadavg()}", flush=True)
    rows: list[dict[str, Any]] = []
    impls = [(sys.executable, "this checkout")]
    if args.baseline_python:
        impls.insert(0, (args.baseline_python, args.baseline_name))
    for python, label in impls:
        rows += measure(python, label, args.nodes, counts, args.seconds)
    print(f"load average after: {os.getloadavg()}")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"machine: {platform.node()} {os.cpu_count()} CPUs, {when}")
    print("| server | pool | open streams | server CPU (s/s) | claim+release p50 / p90 | messages, KiB |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['label']} | {r['nodes']}x8 | {r['streams']} | {r['server_cpu_per_s']:.2f} "
            f"| {r['p50_ms']:.1f} / {r['p90_ms']:.1f} ms | {r['messages']}, {r['kib']:.0f} |"
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
