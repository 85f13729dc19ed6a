"""Many clients claiming and releasing fractions at once, and the invariant checks on the result."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import httpx

from serverctl import ServerProcess

GiB = 1024**3


@dataclass
class ChurnLog:
    """What the server acknowledged (answered 2xx to), per claim id."""

    created: dict[str, str] = field(default_factory=dict)  # id -> state in the 201 answer
    released: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)
    errors: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def churn(
    server: ServerProcess,
    clients: int,
    seconds: float,
    log: ChurnLog,
    seed: int = 7,
    stop: threading.Event | None = None,
    min_created: int = 0,
    max_seconds: float = 120.0,
) -> None:
    """Run `clients` threads that claim a random fraction, hold it briefly and release it, until
    `seconds` pass (and `log` holds at least `min_created` claims, for at most `max_seconds`: a
    machine shared with other work may be slow) or `stop` is set."""
    started = time.monotonic()
    stop_at, give_up_at = started + seconds, started + max(seconds, max_seconds)
    stop = stop or threading.Event()

    def busy() -> bool:
        now = time.monotonic()
        return not stop.is_set() and (now < stop_at or (len(log.created) < min_created and now < give_up_at))

    def worker(worker_id: int) -> None:
        rng = random.Random(seed * 1000 + worker_id)
        with server.client() as http:
            while busy():
                body = {"gpus": 1, "memory": f"{rng.randint(1, 30)}GiB", "compute": rng.randint(5, 40)}
                try:
                    response = http.post("/v1/claims", json=body)
                except httpx.TransportError:
                    with log.lock:
                        log.errors += 1
                    time.sleep(0.05)
                    continue
                if response.status_code != 201:
                    with log.lock:
                        log.violations.append(f"claim answered {response.status_code}: {response.text}")
                    continue
                claim = response.json()
                with log.lock:
                    log.created[claim["id"]] = claim["state"]
                time.sleep(rng.uniform(0, 0.02))
                try:
                    released = http.delete(f"/v1/claims/{claim['id']}")
                except httpx.TransportError:
                    with log.lock:
                        log.errors += 1
                    continue
                if released.status_code == 200:
                    with log.lock:
                        log.released.add(claim["id"])

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(seconds, max_seconds) + 60)


def watch_invariant(server: ServerProcess, log: ChurnLog, stop: threading.Event) -> None:
    """Poll the device list and record any device whose bound totals exceed its capacity."""
    with server.client() as http:
        while not stop.is_set():
            try:
                devices = http.get("/v1/devices").json()["items"]
            except (httpx.TransportError, ValueError, KeyError):
                time.sleep(0.05)
                continue
            for device in devices:
                if device["memory_allocated_bytes"] > device["memory_total_bytes"]:
                    log.violations.append(f"{device['uuid']} memory over-committed")
                if device["compute_allocated_percent"] > 100:
                    log.violations.append(f"{device['uuid']} compute over-committed")
            time.sleep(0.02)


def consistent_allocations(server: ServerProcess) -> list[str]:
    """Problems found when device totals are compared with the bindings of bound claims."""
    problems = []
    with server.client() as http:
        devices = http.get("/v1/devices").json()["items"]
        bound = http.get("/v1/claims", params={"state": "bound"}).json()["items"]
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for claim in bound:
        for binding in claim["bindings"]:
            expected[binding["device_uuid"]][0] += binding["memory_bytes"]
            expected[binding["device_uuid"]][1] += binding["compute_percent"]
    for device in devices:
        memory, compute = expected.get(device["uuid"], [0, 0])
        totals = (device["memory_allocated_bytes"], device["compute_allocated_percent"])
        if totals != (memory, compute):
            problems.append(f"{device['uuid']}: totals {totals} but bindings sum to {(memory, compute)}")
        if memory > device["memory_total_bytes"] or compute > 100:
            problems.append(f"{device['uuid']}: bindings over-commit the device")
    return problems
