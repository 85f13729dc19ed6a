"""Quotas through the real server: REST, `gpupool tenants set`, queue transparency in
`GET /v1/claims/{id}` and `gpupool ps`, admin preemption, and the quota series in /metrics."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serverctl import ADMIN_TOKEN, ServerProcess

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "gpupool-dashboard.json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        home=tmp_path_factory.mktemp("quota"), simulate="1x4xH100-80GB", extra_args=("--preempt-grace", "1")
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def _cli(server: ServerProcess, *args: str, token: str = ADMIN_TOKEN) -> subprocess.CompletedProcess[str]:
    env = dict(server.env, GPUPOOL_TOKEN=token, COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "gpupool", *args], env=env, capture_output=True, text=True, timeout=30
    )


def _until(client: httpx.Client, claim_id: str, state: str, timeout_s: float = 10.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while (found := client.get(f"/v1/claims/{claim_id}").json())["state"] != state:
        assert time.monotonic() < deadline, found
        time.sleep(0.1)
    return found  # type: ignore[no-any-return]


def test_quota_lifecycle_queue_transparency_and_preemption(server: ServerProcess) -> None:
    with server.client() as admin:
        token_a = admin.post("/v1/tenants", json={"name": "team-a"}).json()["token"]
        token_b = admin.post("/v1/tenants", json={"name": "team-b"}).json()["token"]

    result = _cli(server, "tenants", "set", "team-a", "--guarantee", "1gpu", "--limit", "2gpu,200GiB")
    assert result.returncode == 0, result.stderr
    assert "guarantee 1 GPU" in result.stdout and "limit 2 GPU, 200GiB" in result.stdout

    with server.client(token_a) as team_a, server.client(token_b) as team_b:
        assert team_a.put("/v1/tenants/team-a/quota", json={"limit": "9gpu"}).status_code == 403
        [quota] = team_a.get("/v1/quotas").json()["items"]
        assert quota == {
            "tenant": "team-a",
            "guarantee_gpus": 1.0,
            "limit_gpus": 2.0,
            "guarantee_memory_bytes": None,
            "limit_memory_bytes": 200 * 1024**3,
        }
        borrowed = [team_b.post("/v1/claims", json={"gpus": 1, "preemptible": True}).json() for _ in range(4)]
        assert all(c["state"] == "bound" for c in borrowed)

        beyond = team_a.post("/v1/claims", json={"gpus": 2}).json()
        assert beyond["state"] == "pending"
        detail = team_a.get(f"/v1/claims/{beyond['id']}").json()
        assert detail["queue_position"] == 1
        assert detail["quota_reason"].startswith("beyond the guarantee of team-a")

        ps = _cli(server, "ps", token=token_a)
        assert ps.returncode == 0 and beyond["id"] in ps.stdout and "pending #1" in ps.stdout
        assert "beyond the guarantee" in ps.stdout
        team_a.delete(f"/v1/claims/{beyond['id']}")

        inside = team_a.post("/v1/claims", json={"gpus": 1}).json()
        assert inside["state"] == "pending", "within its guarantee: a borrower is preempted for it ..."
        assert inside["reason"].startswith("waiting for 1 preempted claim(s) to stop")
        states = [team_b.get(f"/v1/claims/{c['id']}").json() for c in borrowed]
        [victim] = [c for c in states if c["preempt_deadline"] is not None]
        assert victim["state"] == "bound" and inside["id"] in victim["reason"]
        _until(team_a, inside["id"], "bound")  # ... and binds once its grace period is over
        assert team_b.get(f"/v1/claims/{victim['id']}").json()["state"] == "preempted"

    with server.client() as admin:
        survivor = next(c for c in states if c["preempt_deadline"] is None)
        marked = admin.post(f"/v1/claims/{survivor['id']}/preempt").json()
        assert marked["state"] == "bound" and marked["preempt_deadline"] is not None
        assert admin.post(f"/v1/claims/{survivor['id']}/preempt").status_code == 409
        _until(admin, survivor["id"], "preempted")
        events = admin.get("/v1/events", params={"claim": survivor["id"]}).json()["items"]
        assert events[-1]["action"] == "claim.preempted"
        assert events[-1]["details"]["reason"] == "preempted by the admin"
        tenants = {t["name"]: t for t in admin.get("/v1/overview").json()["tenants"]}
        assert tenants["team-a"]["guarantee_gpus"] == 1.0 and tenants["team-a"]["allocated_gpus"] == 1.0

    series = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(httpx.get(f"{server.url}/metrics").text)
        for sample in family.samples
    }
    assert series[("gpupool_tenant_guarantee_gpus", (("tenant", "team-a"),))] == 1.0
    assert series[("gpupool_tenant_limit_gpus", (("tenant", "team-a"),))] == 2.0
    assert series[("gpupool_tenant_limit_memory_bytes", (("tenant", "team-a"),))] == 200 * 1024**3
    assert series[("gpupool_scheduler_preemptions_total", (("tenant", "team-b"),))] == 2.0

    # Every series the Grafana dashboard queries is one the server exports.
    exported = {name for name, _ in series}
    wanted = set(re.findall(r"gpupool_[a-z_]+", json.dumps(json.loads(GRAFANA.read_text()))))
    missing = {name for name in wanted if name not in exported and f"{name}_total" not in exported}
    assert missing == set()


def test_bad_quota_is_refused_with_the_field(server: ServerProcess) -> None:
    with server.client() as admin:
        bad = admin.put("/v1/tenants/team-a/quota", json={"guarantee": "lots"})
        assert bad.status_code == 422 and "guarantee" in bad.json()["detail"]
        # Each amount is well-formed, together they contradict: 409 (a schema cannot say this).
        inverted = admin.put("/v1/tenants/team-a/quota", json={"guarantee": "3gpu", "limit": "1gpu"})
        assert inverted.status_code == 409 and "must not exceed the limit" in inverted.json()["detail"]
        assert admin.put("/v1/tenants/nobody/quota", json={"limit": "1gpu"}).status_code == 404
