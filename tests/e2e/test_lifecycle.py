"""Claim lifecycle against a real server: bind, read, release, queue and wake-up."""

from __future__ import annotations

import time

from serverctl import ServerProcess

GiB = 1024**3


def _devices(server: ServerProcess) -> dict[str, dict[str, int]]:
    with server.client() as http:
        return {d["uuid"]: d for d in http.get("/v1/devices").json()["items"]}


def test_healthz_needs_no_token(server: ServerProcess) -> None:
    import httpx

    response = httpx.get(f"{server.url}/healthz")
    assert response.status_code == 200
    assert response.json()["devices"] == 8


def test_devices_list_has_the_contract_fields(server: ServerProcess) -> None:
    devices = _devices(server)
    assert len(devices) == 8
    for device in devices.values():
        for key in (
            "uuid",
            "node",
            "index",
            "model",
            "memory_total_bytes",
            "memory_allocated_bytes",
            "compute_allocated_percent",
        ):
            assert key in device
        assert device["model"] == "H100-80GB"
        assert device["uuid"].startswith("GPU-")


def test_fractional_claim_binds_with_launch_env_and_releases(server: ServerProcess) -> None:
    with server.client() as http:
        created = http.post("/v1/claims", json={"gpus": 1, "memory": "10GiB", "compute": 25})
        assert created.status_code == 201, created.text
        claim = created.json()
        assert claim["state"] == "bound"
        [binding] = claim["bindings"]
        assert binding["memory_bytes"] == 10 * GiB and binding["compute_percent"] == 25
        env = claim["env"]
        assert env["CUDA_VISIBLE_DEVICES"] == binding["device_uuid"]
        assert env["NVIDIA_VISIBLE_DEVICES"] == binding["device_uuid"]
        assert env["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"
        assert env["CUDA_MPS_PINNED_DEVICE_MEM_LIMIT"] == "0=10240M"
        assert env["GPUPOOL_MEMORY_LIMIT_BYTES"] == str(10 * GiB)

        device = _devices(server)[binding["device_uuid"]]
        assert device["memory_allocated_bytes"] >= 10 * GiB
        assert device["compute_allocated_percent"] >= 25

        assert http.get(f"/v1/claims/{claim['id']}").json()["state"] == "bound"
        released = http.delete(f"/v1/claims/{claim['id']}")
        assert released.status_code == 200 and released.json()["state"] == "released"
        # Released claims stay readable.
        again = http.get(f"/v1/claims/{claim['id']}").json()
        assert again["state"] == "released" and again["env"] == {}
        actions = [e["action"] for e in http.get("/v1/events", params={"claim": claim["id"]}).json()["items"]]
        assert actions == ["claim.created", "claim.bound", "claim.released"]


def test_whole_gpu_claim_gets_no_mps_limits(server: ServerProcess) -> None:
    with server.client() as http:
        claim = http.post("/v1/claims", json={"gpus": 2}).json()
        try:
            assert claim["state"] == "bound"
            assert len({b["node"] for b in claim["bindings"]}) == 1, "a gang lands on one node"
            assert all(b["whole_device"] and b["compute_percent"] == 100 for b in claim["bindings"])
            assert "CUDA_MPS_ACTIVE_THREAD_PERCENTAGE" not in claim["env"]
            assert len(claim["env"]["CUDA_VISIBLE_DEVICES"].split(",")) == 2
        finally:
            http.delete(f"/v1/claims/{claim['id']}")


def test_pending_claim_binds_when_capacity_frees(server: ServerProcess) -> None:
    with server.client() as http:
        holders = [http.post("/v1/claims", json={"gpus": 4}).json() for _ in range(2)]
        assert [h["state"] for h in holders] == ["bound", "bound"]
        waiting = http.post("/v1/claims", json={"gpus": 1, "memory": "20GiB", "compute": 10}).json()
        assert waiting["state"] == "pending"
        assert "20GiB" in waiting["reason"]
        assert waiting["queue_position"] == 1
        http.delete(f"/v1/claims/{holders[0]['id']}")
        deadline = time.monotonic() + 5
        state = "pending"
        while time.monotonic() < deadline and state != "bound":
            state = http.get(f"/v1/claims/{waiting['id']}").json()["state"]
            time.sleep(0.05)
        assert state == "bound"
        for claim in (holders[1], waiting):
            http.delete(f"/v1/claims/{claim['id']}")


def test_model_constraint_that_matches_nothing_is_refused_with_what_the_pool_has(
    server: ServerProcess,
) -> None:
    with server.client() as http:
        answer = http.post("/v1/claims", json={"memory": "1GiB", "model": "A100*"})
        assert answer.status_code == 422
        assert answer.json()["detail"] == (
            "model: no device matches 'A100*', so this claim could never bind; this pool has H100-80GB"
        )
        assert http.get("/v1/claims", params={"state": "pending"}).json()["items"] == []


def test_unknown_claim_is_404(server: ServerProcess) -> None:
    with server.client() as http:
        assert http.get("/v1/claims/c-doesnotexist").status_code == 404
        assert http.delete("/v1/claims/c-doesnotexist").status_code == 404


def test_openapi_is_served(server: ServerProcess) -> None:
    with server.client() as http:
        spec = http.get("/openapi.json").json()
    assert "/v1/claims" in spec["paths"]
