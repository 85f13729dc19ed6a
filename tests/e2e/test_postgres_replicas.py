"""Two API processes on one database (PostgreSQL, and one SQLite file) under 50-client churn never
over-commit a device; each serves the other's changes (their in-memory states stay coherent)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from churn import ChurnLog, churn, consistent_allocations, watch_invariant
from serverctl import ServerProcess


@pytest.mark.parametrize("backend", ["postgres", "sqlite"])
def test_two_servers_on_one_database_never_over_commit(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "postgres":
        url = request.getfixturevalue("postgres").create_database("gpupool_replicas")
    else:
        url = str(tmp_path / "shared.db")
    first = ServerProcess(home=tmp_path / "a", db=url)
    second = ServerProcess(home=tmp_path / "b", db=url)
    for server in (first, second):
        server.home.mkdir()
        server.start()
    try:
        log = ChurnLog()
        stop = threading.Event()
        watchers = [
            threading.Thread(target=watch_invariant, args=(s, log, stop), daemon=True)
            for s in (first, second)
        ]
        churners = [
            threading.Thread(target=churn, args=(s, 25, 6.0, log, seed), kwargs={"min_created": 100})
            for seed, s in enumerate((first, second))
        ]
        for thread in (*watchers, *churners):
            thread.start()
        for thread in churners:
            thread.join()
        stop.set()
        for thread in watchers:
            thread.join()
        assert not log.violations, log.violations[:5]
        assert log.errors == 0
        assert len(log.created) >= 100, "both replicas must actually do work"
        assert log.released == set(log.created)
        assert consistent_allocations(first) == []
        assert consistent_allocations(second) == []
        with first.client() as http:
            devices = http.get("/v1/devices").json()["items"]
        assert all(d["memory_allocated_bytes"] == 0 and d["compute_allocated_percent"] == 0 for d in devices)
    finally:
        first.stop()
        second.stop()
