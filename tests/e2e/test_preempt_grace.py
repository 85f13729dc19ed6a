"""Preemption with a grace period against a real server: a detached workload (node agent) that
traps SIGTERM, one that ignores it (SIGKILL at the deadline), an attached `gpupool run`; and the
lease taken with the claim (`lease_ttl_s`)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from gpupool.client import Client
from runctl import FAST_AGENT_ARGS, claim, events, kill_quietly, pid_alive, start_gpupool, workload_cmd
from serverctl import ADMIN_TOKEN, ServerProcess

GRACE_S = 4.0  # generous: with a CPU hog beside the suite, one run failed at 2 s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    args = (*FAST_AGENT_ARGS, "--preempt-grace", str(GRACE_S))
    proc = ServerProcess(home=tmp_path_factory.mktemp("grace"), simulate="1x1xH100-80GB", extra_args=args)
    proc.start()
    try:
        with proc.client() as admin:
            tokens = {name: admin.post("/v1/tenants", json={"name": name}).json()["token"] for name in "ab"}
            admin.put("/v1/tenants/a/quota", json={"guarantee": "1gpu", "limit": "1gpu"})
        proc.tokens = tokens  # type: ignore[attr-defined]
        yield proc
    finally:
        proc.stop()


def _detached(server: ServerProcess, *args: str) -> tuple[str, int]:
    """A preemptible claim of the admin running `workload.py ARGS` under the node agent (the
    admin's detached workloads run as the server's user; a tenant's need an OS user, which
    tests/e2e/test_trust_boundary.py covers)."""
    with server.client() as http:
        victim = http.post("/v1/claims", json={"gpus": 1, "preemptible": True}).json()
        assert victim["state"] == "bound", victim
        body = {"claim_id": victim["id"], "command": workload_cmd(*args), "detach": True}
        workload = http.post("/v1/workloads", json=body).json()
    return victim["id"], int(workload["pid"])


def _watch(server: ServerProcess, waiter_id: str, pid: int, timeout: float = 10.0) -> dict[str, float]:
    """Poll until the waiter binds; return when the workload was last seen alive and the waiter
    was first seen bound. Fails if the waiter is ever bound while the workload still runs."""
    seen: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = pid_alive(pid)
        state = claim(server, waiter_id)["state"]
        if alive:
            seen["alive"] = time.time()
        if state == "bound":
            assert not pid_alive(pid), "the waiting claim was bound while the victim's workload ran"
            seen["bound"] = time.time()
            return seen
        time.sleep(0.05)
    raise AssertionError(f"claim {waiter_id} not bound in {timeout}s: {claim(server, waiter_id)}")


def _log(server: ServerProcess, claim_id: str) -> str:
    with server.client() as http:
        text: str = http.get(f"/v1/workloads/{claim_id}/logs").json()["data"]
    return text


def test_victim_gets_sigterm_and_the_waiter_binds_after_it_exited(server: ServerProcess) -> None:
    victim_id, pid = _detached(server, "--sleep", "60", "--term-delay", "0.5")
    with server.client(server.tokens["a"]) as http:  # type: ignore[attr-defined]
        waiter = http.post("/v1/claims", json={"gpus": 1}).json()
    assert waiter["state"] == "pending"
    assert waiter["reason"].startswith("waiting for 1 preempted claim(s) to stop (grace until ")
    victim = claim(server, victim_id)
    assert victim["state"] == "bound" and victim["preempt_deadline"] is not None
    assert waiter["id"] in victim["reason"]

    seen = _watch(server, waiter["id"], pid)
    assert "alive" in seen, "the workload ran on while the waiter waited"
    victim = claim(server, victim_id)
    assert victim["state"] == "preempted" and waiter["id"] in victim["reason"]
    assert "workload got SIGTERM" in _log(server, victim_id)
    actions = [e["action"] for e in events(server, victim_id)]
    for earlier, later in [
        ("claim.bound", "claim.preempting"),
        ("claim.preempting", "workload.stopping"),
        ("workload.stopping", "claim.preempted"),
    ]:
        assert actions.index(earlier) < actions.index(later), actions
    assert "workload.killed" not in actions, "it stopped within the grace period"
    with server.client() as http:
        assert http.get(f"/v1/workloads/{victim_id}").json()["exit_code"] == 143
        http.delete(f"/v1/claims/{waiter['id']}")


def test_victim_ignoring_sigterm_is_killed_at_the_deadline(server: ServerProcess) -> None:
    victim_id, pid = _detached(server, "--sleep", "60", "--ignore-term")
    with server.client(server.tokens["a"]) as http:  # type: ignore[attr-defined]
        waiter = http.post("/v1/claims", json={"gpus": 1}).json()
    deadline = claim(server, victim_id)["preempt_deadline"]
    seen = _watch(server, waiter["id"], pid)
    assert seen["alive"] >= deadline - 0.3, "SIGTERM alone did not stop it: it ran to the deadline"
    victim = claim(server, victim_id)
    assert victim["state"] == "preempted"
    actions = [e["action"] for e in events(server, victim_id)]
    assert actions.index("workload.killed") < actions.index("claim.preempted"), actions
    with server.client() as http:
        assert http.get(f"/v1/workloads/{victim_id}").json()["exit_code"] == -9
        http.delete(f"/v1/claims/{waiter['id']}")


def test_admin_preempt_of_gpupool_run_stops_cmd_and_ends_preempted(server: ServerProcess) -> None:
    proc = start_gpupool(server, "run", "--", *workload_cmd("--sleep", "60", "--term-delay", "0.2"))
    try:

        def running() -> dict[str, Any] | None:
            with server.client() as http:
                items = http.get("/v1/workloads").json()["items"]
            return next((w for w in items if w["state"] == "running" and not w["detached"]), None)

        deadline = time.monotonic() + 10
        while (workload := running()) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert workload is not None
        with server.client() as http:
            answer = http.post(f"/v1/claims/{workload['claim_id']}/preempt").json()
            assert answer["state"] == "bound" and answer["preempt_deadline"] is not None
            assert http.post(f"/v1/claims/{workload['claim_id']}/preempt").status_code == 409
        _out, err = proc.communicate(timeout=15)
    finally:
        kill_quietly(proc)
    assert proc.returncode == 143, err
    assert "is preempted (preempted by the admin)" in err
    ended = claim(server, workload["claim_id"])
    assert (ended["state"], ended["reason"]) == ("preempted", "preempted by the admin")


def test_lease_taken_with_the_claim_reclaims_it_without_heartbeats(server: ServerProcess) -> None:
    with Client(url=server.url, token=ADMIN_TOKEN) as sdk:
        held = sdk.claim(gpus=1, lease_ttl_s=1)
    assert held.state == "bound"
    started = time.monotonic()
    while claim(server, held.id)["state"] == "bound" and time.monotonic() - started < 10:
        time.sleep(0.1)
    gone = claim(server, held.id)
    assert gone["state"] == "released" and gone["reason"].startswith("lease expired")
    assert time.monotonic() - started >= 0.5


@pytest.mark.parametrize("ttl", [0, 0.5, 86401, "soon"], ids=["zero", "under-1s", "over-a-day", "text"])
def test_bad_lease_ttl_is_refused_with_the_field(server: ServerProcess, ttl: object) -> None:
    with server.client() as http:
        answer = http.post("/v1/claims", json={"gpus": 1, "lease_ttl_s": ttl})
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("lease_ttl_s: ")
