"""/metrics of a real server, parsed with prometheus_client's own parser, against /v1/devices."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serverctl import ServerProcess

GiB = 1024**3


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A 2x4 pool with a fractional claim, a whole-GPU claim and one claim that cannot fit now."""
    proc = ServerProcess(home=tmp_path_factory.mktemp("metrics")).start()
    try:
        with proc.client() as http:
            # 4 GPUs fill one node, so the slice and the pair share the other, and a second 4-GPU
            # claim has no whole node left to go to (for now).
            assert http.post("/v1/claims", json={"gpus": 4}).status_code == 201
            assert http.post("/v1/claims", json={"memory": "20GiB", "compute": 25}).status_code == 201
            assert http.post("/v1/claims", json={"gpus": 2}).status_code == 201
            assert http.post("/v1/claims", json={"gpus": 4}).json()["state"] == "pending"
            assert http.get("/v1/claims/c-missing").status_code == 404
        yield proc
    finally:
        proc.stop()


def _scrape(server: ServerProcess) -> dict[str, list[tuple[dict[str, str], float]]]:
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    series: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            series.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return series


def _by_uuid(samples: list[tuple[dict[str, str], float]]) -> dict[str, float]:
    return {labels["UUID"]: value for labels, value in samples}


def test_device_series_match_the_api(busy_server: ServerProcess) -> None:
    with busy_server.client() as http:
        devices = {d["uuid"]: d for d in http.get("/v1/devices").json()["items"]}
    series = _scrape(busy_server)
    assert len(devices) == 8
    for name, field in [
        ("gpupool_device_memory_total_bytes", "memory_total_bytes"),
        ("gpupool_device_memory_allocated_bytes", "memory_allocated_bytes"),
        ("gpupool_device_compute_allocated_percent", "compute_allocated_percent"),
    ]:
        assert _by_uuid(series[name]) == {uuid: float(d[field]) for uuid, d in devices.items()}, name
    claims = _by_uuid(series["gpupool_device_claims"])
    assert claims == {uuid: float(len(d["claims"])) for uuid, d in devices.items()}
    assert sum(claims.values()) == 7  # a four-GPU gang, one fractional vGPU and a two-GPU gang

    labels = {labels["UUID"]: labels for labels, _ in series["gpupool_device_memory_total_bytes"]}
    for uuid, device in devices.items():
        assert labels[uuid] == {
            "gpu": str(device["index"]),
            "UUID": uuid,
            "modelName": device["model"],
            "Hostname": device["node"],
        }
    # Telemetry moves between two reads; it must stay within what is allocated.
    utilization = _by_uuid(series["gpupool_device_utilization_percent"])
    used = _by_uuid(series["gpupool_device_memory_used_bytes"])
    for uuid, device in devices.items():
        assert 0 <= utilization[uuid] <= max(device["compute_allocated_percent"], 0) + 1e-9
        assert 0 <= used[uuid] <= device["memory_allocated_bytes"]


def test_tenant_scheduler_and_api_series(busy_server: ServerProcess) -> None:
    with busy_server.client() as http:
        pending = http.get("/v1/claims", params={"state": "pending"}).json()["items"]
    series = _scrape(busy_server)
    total = _device_memory_bytes(busy_server)
    [(labels, allocated)] = series["gpupool_tenant_allocated_gpus"]
    assert labels == {"tenant": "admin"}
    assert allocated == pytest.approx(6 + 20 * GiB / total)  # whole GPUs 4 + 2 and a 20GiB/25% slice
    assert series["gpupool_tenant_allocated_memory_bytes"] == [({"tenant": "admin"}, 20 * GiB + 6 * total)]
    assert series["gpupool_tenant_allocated_compute_percent"] == [({"tenant": "admin"}, 625.0)]
    assert series["gpupool_tenant_pending_claims"] == [({"tenant": "admin"}, float(len(pending)))]
    assert series["gpupool_scheduler_queue_length"] == [({}, float(len(pending)))]

    decisions = {
        labels["result"]: value for labels, value in series["gpupool_scheduler_decision_seconds_count"]
    }
    assert decisions.get("placed", 0) >= 2 and decisions.get("unschedulable", 0) >= 1

    requests = {
        (labels["method"], labels["route"]): value
        for labels, value in series["gpupool_api_request_duration_seconds_count"]
    }
    assert requests[("POST", "/v1/claims")] >= 4
    errors = {
        (labels["route"], labels["status"]): value for labels, value in series["gpupool_api_errors_total"]
    }
    assert errors[("/v1/claims/{claim_id}", "404")] >= 1


def _device_memory_bytes(server: ServerProcess) -> int:
    with server.client() as http:
        device = http.get("/v1/devices").json()["items"][0]
    return int(device["memory_total_bytes"])


def test_two_apps_in_one_process_keep_separate_registries(tmp_path: Path) -> None:
    from gpupool.api.app import create_app
    from gpupool.devices import SimulatedBackend
    from gpupool.pool import PoolService
    from gpupool.scheduler import make_placer
    from gpupool.store import Store

    texts = []
    for name in ("one", "two"):
        pool = PoolService(Store(tmp_path / f"{name}.db"), SimulatedBackend("1x2xH100-80GB"), make_placer())
        pool.start()
        app = create_app(pool, "token")
        texts.append(app.state.metrics.render().decode())
        pool.store.close()
    assert all("gpupool_device_memory_total_bytes" in text for text in texts)
