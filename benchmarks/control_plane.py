"""Control-plane benchmark: claim+release round trips against `GET /healthz` on the same server, and
how a claim's cost grows with the pool.

Starts real `gpupool serve` processes (simulated pools, SQLite with synchronous=FULL) on loopback and
drives them from this process with a lean asyncio HTTP/1.1 client (keep-alive, one connection per
client), so that the client's own CPU stays small next to the server's on a 2-core machine.

Reports, per server implementation:
  * GET /healthz requests/s and claim+release round trips/s with 1, 10 and 50 concurrent clients
    (p50/p99 each), and the ratio round trips/s / healthz requests/s at 50 clients;
  * the pool-size table: for NODESx8xH100-80GB pools with 200 claims held, claim+release p50/p90
    (one client), GET /v1/devices and GET /v1/overview (time and size), and the server's RSS.

`--baseline-python` names the interpreter of another checkout (e.g. the unmodified main in its own
venv); both are then measured in the same run, one after the other for each measurement, so that a
comparison is never made across runs on a shared machine.

`--replicas` adds claim+release with 50 clients spread over 1 and 2 server processes on one store
(SQLite file; PostgreSQL too where the tests can start one), for this checkout.

    .venv/bin/python benchmarks/control_plane.py [--seconds 5] [--baseline-python PATH] [--replicas]
        [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from serverctl import ADMIN_TOKEN, ServerProcess

CLIENT_COUNTS = (1, 10, 50)
POOL_NODES = (2, 100, 500, 1000)
HELD_CLAIMS = 200
CLAIM_BODY = {"memory": "1GiB", "compute": 2}


# ------------------------------------------------------------------ a lean HTTP/1.1 client
class HttpError(RuntimeError):
    pass


class Connection:
    """One keep-alive HTTP/1.1 connection; requests on it are sequential."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.auth = f"Bearer {ADMIN_TOKEN}"

    async def open(self) -> Connection:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with suppress(OSError):
                await self.writer.wait_closed()

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: {self.auth}\r\nContent-Length: {len(payload)}\r\n"
        )
        if body is not None:
            head += "Content-Type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + payload)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
                raise HttpError(f"{method} {path}: chunked answers are not expected")
        if length is None:
            raise HttpError(f"{method} {path}: answer without Content-Length")
        return status, await self.reader.readexactly(length)


async def _check(conn: Connection, method: str, path: str, body: Any = None, ok: int = 200) -> bytes:
    status, data = await conn.request(method, path, body)
    if status != ok:
        raise HttpError(f"{method} {path} answered {status}: {data[:300]!r}")
    return data


# -------------------------------------------------------------------------- measurements
@dataclass
class Run:
    """Latencies (seconds) of one closed-loop run: `clients` connections for `seconds`, and the
    server's CPU seconds meanwhile (robust to a busy machine, unlike the rates)."""

    clients: int
    seconds: float
    samples: list[float] = field(default_factory=list)
    server_cpu_s: float = float("nan")

    @property
    def rate(self) -> float:
        return len(self.samples) / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def summary(self) -> dict[str, float]:
        return {
            "clients": self.clients,
            "count": len(self.samples),
            "per_s": self.rate,
            "p50_ms": self.pct(0.50) * 1000,
            "p90_ms": self.pct(0.90) * 1000,
            "p99_ms": self.pct(0.99) * 1000,
            "server_cpu_ms_per_op": self.server_cpu_s / max(1, len(self.samples)) * 1000,
        }


async def _healthz(conn: Connection) -> None:
    await _check(conn, "GET", "/healthz")


async def _claim_release(conn: Connection) -> None:
    created = json.loads(await _check(conn, "POST", "/v1/claims", CLAIM_BODY, ok=201))
    if created["state"] != "bound":
        raise HttpError(f"claim {created['id']} is {created['state']}: {created['reason']}")
    await _check(conn, "DELETE", f"/v1/claims/{created['id']}")


async def closed_loop(
    port: int, clients: int, seconds: float, step: Callable[[Connection], Any], pid: int | None = None
) -> Run:
    """`clients` connections each running `step` back to back until `seconds` have passed."""
    conns = [await Connection("127.0.0.1", port).open() for _ in range(clients)]
    cpu_before = cpu_seconds(pid) if pid else 0.0
    run = Run(clients, seconds)
    stop_at = time.perf_counter() + seconds

    async def client(conn: Connection) -> None:
        while True:
            start = time.perf_counter()
            if start >= stop_at:
                return
            await step(conn)
            run.samples.append(time.perf_counter() - start)

    started = time.perf_counter()
    try:
        await asyncio.gather(*(client(c) for c in conns))
    finally:
        for conn in conns:
            await conn.close()
    run.seconds = time.perf_counter() - started  # the last steps end a little after stop_at
    if pid:
        run.server_cpu_s = cpu_seconds(pid) - cpu_before
    return run


async def timed_get(port: int, path: str, repeat: int) -> tuple[float, int]:
    """Median seconds and the size in bytes of `repeat` sequential GETs of `path`."""
    conn = await Connection("127.0.0.1", port).open()
    times, size = [], 0
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            size = len(await _check(conn, "GET", path))
            times.append(time.perf_counter() - start)
    finally:
        await conn.close()
    return statistics.median(times), size


async def hold_claims(port: int, count: int) -> None:
    conn = await Connection("127.0.0.1", port).open()
    try:
        for index in range(count):
            body = {"memory": f"{1 + index % 8}GiB", "compute": 1 + index % 5}
            await _check(conn, "POST", "/v1/claims", body, ok=201)
    finally:
        await conn.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# ------------------------------------------------------------------------------ servers
@contextmanager
def served(python: str, simulate: str) -> Iterator[ServerProcess]:
    with tempfile.TemporaryDirectory() as home:
        server = ServerProcess(home=Path(home), simulate=simulate, python=python).start(timeout_s=120)
        try:
            yield server
        finally:
            server.stop()


def throughput(impls: dict[str, str], seconds: float, repeat: int = 0) -> dict[str, Any]:
    """Healthz and claim+release at each client count, every implementation in turn; then `repeat`
    more rounds of the top client count alone (implementations alternating), for the ratio's spread."""
    results: dict[str, Any] = {name: {"healthz": {}, "claim_release": {}} for name in impls}
    servers: dict[str, ServerProcess] = {}
    contexts = []
    try:
        for name, python in impls.items():
            context = served(python, "2x8xH100-80GB")
            servers[name] = context.__enter__()
            contexts.append(context)
        for server in servers.values():  # warm up both before any measurement
            asyncio.run(closed_loop(server.port, 4, 1.0, _claim_release))
            asyncio.run(closed_loop(server.port, 4, 0.5, _healthz))
        for clients in CLIENT_COUNTS:
            for name, server in servers.items():
                pid = server.proc.pid if server.proc else None
                health = asyncio.run(closed_loop(server.port, clients, seconds, _healthz, pid))
                claims = asyncio.run(closed_loop(server.port, clients, seconds, _claim_release, pid))
                results[name]["healthz"][clients] = health.summary()
                results[name]["claim_release"][clients] = claims.summary()
                print(
                    f"  {name}: {clients} client(s): healthz {health.rate:.0f}/s, claim+release "
                    f"{claims.rate:.0f}/s (p50 {claims.pct(0.5) * 1000:.1f} ms); server CPU "
                    f"{health.summary()['server_cpu_ms_per_op']:.2f} / "
                    f"{claims.summary()['server_cpu_ms_per_op']:.2f} ms",
                    file=sys.stderr,
                )
        top = max(CLIENT_COUNTS)
        for name in impls:
            results[name]["ratio"] = (
                results[name]["claim_release"][top]["per_s"] / results[name]["healthz"][top]["per_s"]
            )
            results[name]["rounds"] = [_round(results[name], top)]
        for index in range(repeat):
            for name, server in servers.items():
                pid = server.proc.pid if server.proc else None
                health_run = asyncio.run(closed_loop(server.port, top, seconds, _healthz, pid))
                claims_run = asyncio.run(closed_loop(server.port, top, seconds, _claim_release, pid))
                measured = {"healthz": health_run.summary(), "claim_release": claims_run.summary()}
                row = _round({kind: {top: summary} for kind, summary in measured.items()}, top)
                results[name]["rounds"].append(row)
                print(f"  {name}: round {index + 2}: {_round_text(row)}", file=sys.stderr)
    finally:
        for context in reversed(contexts):
            context.__exit__(None, None, None)
    return results


def _round(result: dict[str, Any], clients: int) -> dict[str, float]:
    health, claims = result["healthz"][clients], result["claim_release"][clients]
    return {
        "healthz_per_s": health["per_s"],
        "claim_release_per_s": claims["per_s"],
        "ratio": claims["per_s"] / health["per_s"],
        "healthz_cpu_ms": health["server_cpu_ms_per_op"],
        "round_trip_cpu_ms": claims["server_cpu_ms_per_op"],
    }


def _round_text(row: dict[str, float]) -> str:
    return (
        f"ratio {row['ratio']:.3f} ({row['claim_release_per_s']:.0f} / {row['healthz_per_s']:.0f}), "
        f"server CPU {row['healthz_cpu_ms']:.2f} / {row['round_trip_cpu_ms']:.2f} ms"
    )


def pool_sizes(impls: dict[str, str], seconds: float, nodes_list: tuple[int, ...]) -> dict[str, Any]:
    """Per pool size and implementation: claim+release p50/p90 with claims held, reads, RSS."""
    results: dict[str, Any] = {name: {} for name in impls}
    for nodes in nodes_list:
        for name, python in impls.items():
            with served(python, f"{nodes}x8xH100-80GB") as server:
                assert server.proc is not None
                asyncio.run(hold_claims(server.port, HELD_CLAIMS))
                asyncio.run(closed_loop(server.port, 1, 1.0, _claim_release))  # warm-up
                run = asyncio.run(closed_loop(server.port, 1, seconds, _claim_release))
                devices_s, devices_bytes = asyncio.run(timed_get(server.port, "/v1/devices", 5))
                overview_s, overview_bytes = asyncio.run(timed_get(server.port, "/v1/overview", 5))
                row = {
                    "claim_release": run.summary(),
                    "devices_ms": devices_s * 1000,
                    "devices_kib": devices_bytes / 1024,
                    "overview_ms": overview_s * 1000,
                    "overview_kib": overview_bytes / 1024,
                    "rss_mib": rss_mib(server.proc.pid),
                }
                results[name][nodes] = row
                print(
                    f"  {name}: {nodes}x8: claim+release p50 {row['claim_release']['p50_ms']:.1f} ms, "
                    f"devices {row['devices_ms']:.0f} ms, overview {row['overview_ms']:.0f} ms",
                    file=sys.stderr,
                )
    return results


async def _spread(servers: list[ServerProcess], clients: int, seconds: float) -> list[Run]:
    """Claim+release with `clients` connections shared out over the servers, all at once."""
    share = clients // len(servers)
    return list(await asyncio.gather(*(closed_loop(s.port, share, seconds, _claim_release) for s in servers)))


def replicas(seconds: float, clients: int = 50) -> dict[str, Any]:
    """This checkout only: claim+release round trips/s with `clients` spread over 1 and over 2
    server processes on one SQLite file (and on one PostgreSQL when the tests' helper can start
    one), all on the same machine."""
    results: dict[str, Any] = {}
    databases: list[tuple[str, Callable[[Path], str]]] = [("sqlite", lambda home: str(home / "shared.db"))]
    postgres = None
    try:
        from pgctl import start_postgres, unavailable_reason

        if unavailable_reason() is None:
            postgres = start_postgres()
            names = iter(range(1000))
            databases.append(("postgres", lambda _home: postgres.create_database(f"bench_{next(names)}")))
    except Exception as exc:  # the benchmark still reports SQLite
        print(f"  (no PostgreSQL: {exc})", file=sys.stderr)
    try:
        for backend, make_db in databases:
            for processes in (1, 2):
                with tempfile.TemporaryDirectory() as scratch:
                    home = Path(scratch)
                    db = make_db(home)
                    servers = [
                        ServerProcess(home=home / f"s{i}", simulate="2x8xH100-80GB", db=db)
                        for i in range(processes)
                    ]
                    for server in servers:
                        server.home.mkdir()
                        server.start(timeout_s=120)
                    try:
                        asyncio.run(_spread(servers, clients, seconds))  # warm-up
                        runs = asyncio.run(_spread(servers, clients, seconds))
                    finally:
                        for server in servers:
                            server.stop()
                rate = sum(run.rate for run in runs)
                samples = [x for run in runs for x in run.samples]
                merged = Run(clients, seconds, samples)
                results[f"{backend} x{processes}"] = {**merged.summary(), "per_s": rate}
                print(
                    f"  replicas: {backend}, {processes} process(es): {rate:.0f} round trips/s",
                    file=sys.stderr,
                )
    finally:
        if postgres is not None:
            postgres.stop()
    return results


# ------------------------------------------------------------------------------ report
def report(
    throughputs: dict[str, Any], pools: dict[str, Any], processes: dict[str, Any] | None = None
) -> str:
    lines = []
    if processes:
        lines += [
            "| store, server processes | claim+release round trips/s (p50 / p99 ms) |",
            "|---|---|",
        ]
        for name, row in processes.items():
            lines.append(f"| {name} | {row['per_s']:.0f} ({row['p50_ms']:.1f} / {row['p99_ms']:.1f}) |")
        lines.append("")
    if throughputs:
        lines += [
            "| server | clients | healthz req/s (p50 / p99 ms) "
            "| claim+release round trips/s (p50 / p99 ms) | server CPU per healthz / round trip |",
            "|---|---|---|---|---|",
        ]
        for name, result in throughputs.items():
            for clients in CLIENT_COUNTS:
                h, c = result["healthz"][clients], result["claim_release"][clients]
                lines.append(
                    f"| {name} | {clients} | {h['per_s']:.0f} ({h['p50_ms']:.1f} / {h['p99_ms']:.1f}) | "
                    f"{c['per_s']:.0f} ({c['p50_ms']:.1f} / {c['p99_ms']:.1f}) | "
                    f"{h['server_cpu_ms_per_op']:.2f} / {c['server_cpu_ms_per_op']:.2f} ms |"
                )
        lines.append("")
        for name, result in throughputs.items():
            top = max(CLIENT_COUNTS)
            lines.append(
                f"- **{name}**: ratio claim+release round trips/s / healthz requests/s at {top} clients = "
                f"**{result['ratio']:.3f}** ({result['claim_release'][top]['per_s']:.0f} / "
                f"{result['healthz'][top]['per_s']:.0f})"
            )
            rounds = result.get("rounds", [])
            if len(rounds) > 1:
                ratios = sorted(row["ratio"] for row in rounds)
                cpu = statistics.median(row["round_trip_cpu_ms"] for row in rounds)
                health_cpu = statistics.median(row["healthz_cpu_ms"] for row in rounds)
                lines.append(
                    f"  - over {len(rounds)} rounds at {top} clients (this one and `--repeat` more, "
                    f"alternating servers): ratio median **{statistics.median(ratios):.3f}** (min "
                    f"{ratios[0]:.3f}, max {ratios[-1]:.3f}); median server CPU per healthz / round trip "
                    f"{health_cpu:.2f} / {cpu:.2f} ms"
                )
        lines.append("")
    if pools:
        lines += [
            "| server | pool | claim+release p50 / p90 | `GET /v1/devices` | `GET /v1/overview` | RSS |",
            "|---|---|---|---|---|---|",
        ]
        for name, rows in pools.items():
            for nodes, row in rows.items():
                c = row["claim_release"]
                lines.append(
                    f"| {name} | {nodes}x8 | {c['p50_ms']:.1f} / {c['p90_ms']:.1f} ms | "
                    f"{row['devices_ms']:.0f} ms, {_size(row['devices_kib'])} | "
                    f"{row['overview_ms']:.0f} ms, {_size(row['overview_kib'])} | {row['rss_mib']:.0f} MiB |"
                )
        lines.append("")
        for name, rows in pools.items():
            smallest, largest = min(rows), max(rows)
            flat = rows[largest]["claim_release"]["p50_ms"] / rows[smallest]["claim_release"]["p50_ms"]
            lines.append(f"- **{name}**: claim+release p50 on {largest}x8 / on {smallest}x8 = **{flat:.2f}**")
    return "\n".join(lines)


def _size(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB" if kib >= 1024 else f"{kib:.0f} KiB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each closed-loop run")
    parser.add_argument("--baseline-python", help="interpreter of a baseline checkout, measured too")
    parser.add_argument("--baseline-name", default="before", help="its name in the report")
    parser.add_argument("--name", default="this checkout", help="the name of this checkout's server")
    parser.add_argument("--nodes", default=",".join(map(str, POOL_NODES)), help="pool sizes (nodes of 8)")
    parser.add_argument(
        "--repeat", type=int, default=0, help="more rounds of the top client count, for the ratio's spread"
    )
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-pools", action="store_true")
    parser.add_argument("--replicas", action="store_true", help="also: 1 vs 2 server processes on one store")
    parser.add_argument("--out", type=Path, help="write raw numbers as JSON here")
    args = parser.parse_args()
    impls = {}
    if args.baseline_python:
        impls[args.baseline_name] = args.baseline_python
    impls[args.name] = sys.executable
    started = time.time()
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    throughputs = {} if args.skip_throughput else throughput(impls, args.seconds, args.repeat)
    nodes = tuple(int(n) for n in args.nodes.split(",") if n)
    pools = {} if args.skip_pools else pool_sizes(impls, args.seconds, nodes)
    processes = replicas(args.seconds) if args.replicas else {}
    print(f"load average after: {os.getloadavg()}", file=sys.stderr)
    print(report(throughputs, pools, processes))
    if args.out:
        raw = {
            "machine": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
            "wall_s": time.time() - started,
            "servers": impls,
            "throughput": throughputs,
            "pools": pools,
            "replicas": processes,
        }
        args.out.write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
