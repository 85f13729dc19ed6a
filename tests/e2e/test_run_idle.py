"""Idle reclaim on a real server: a server default, a per-tenant override, activity keeps a claim."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from runctl import FAST_AGENT_ARGS, claim, events, gpupool, wait_for, workload_cmd
from serverctl import ServerProcess

IDLE_S = 1.5


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    args = (*FAST_AGENT_ARGS, "--idle-timeout", str(IDLE_S))
    proc = ServerProcess(
        home=tmp_path_factory.mktemp("idle"), simulate="1x4xH100-80GB", extra_args=args
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_idle_reclaim_default_override_and_activity(server: ServerProcess) -> None:
    with server.client() as http:
        token = http.post("/v1/tenants", json={"name": "patient"}).json()["token"]
        set_never = http.put("/v1/tenants/patient/idle-timeout", json={"seconds": 0})
        assert set_never.status_code == 200 and set_never.json()["effective_s"] is None
        idle = http.post("/v1/claims", json={"memory": "1GiB"}).json()
    with server.client(token) as http:
        patient = http.post("/v1/claims", json={"memory": "1GiB"}).json()
        assert http.put("/v1/tenants/patient/idle-timeout", json={"seconds": 5}).status_code == 403
    busy = gpupool(
        server, "run", "--detach", "--memory", "1GiB", "--", *workload_cmd("--util", "60", "--sleep", "30")
    )
    busy_id = busy.stdout.strip()
    try:
        gone = wait_for(
            lambda: (c := claim(server, idle["id"]))["state"] == "released" and c, timeout=IDLE_S + 4
        )
        assert gone["reason"].startswith("idle: no GPU activity")
        reclaim = [e for e in events(server, idle["id"]) if e["action"] == "agent.idle_reclaim"]
        assert reclaim and reclaim[0]["details"]["timeout_s"] == IDLE_S
        time.sleep(max(0.0, IDLE_S + 0.5 - (time.time() - claim(server, busy_id)["bound_at"])))
        assert claim(server, busy_id)["state"] == "bound", "a claim whose process works is not idle"
        assert claim(server, patient["id"])["state"] == "bound", "tenant override 0 never reclaims"
    finally:
        gpupool(server, "stop", busy_id)
        with server.client() as http:
            http.delete(f"/v1/claims/{patient['id']}")
