"""Idempotent claims: a retried POST /v1/claims with the same Idempotency-Key returns the claim the
first one made, also when the answer was lost in a crash of the server (kill -9, restart)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from serverctl import ServerProcess


@pytest.fixture
def fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(home=tmp_path_factory.mktemp("idempotent")).start()
    try:
        yield proc
    finally:
        proc.stop()


def _tenant(server: ServerProcess, name: str) -> httpx.Client:
    with server.client() as admin:
        token = admin.post("/v1/tenants", json={"name": name}).json()["token"]
    return server.client(token)


def _active(http: httpx.Client) -> list[str]:
    return [c["id"] for c in http.get("/v1/claims", params={"state": ["pending", "bound"]}).json()["items"]]


def test_a_retry_with_the_same_key_returns_the_same_claim(fresh_server: ServerProcess) -> None:
    with _tenant(fresh_server, "team-a") as http:
        key = {"Idempotency-Key": str(uuid.uuid4())}
        first = http.post("/v1/claims", json={"memory": "10GiB", "compute": 20}, headers=key)
        again = http.post("/v1/claims", json={"memory": 10 * 1024**3, "compute": "20%"}, headers=key)
        assert first.status_code == again.status_code == 201
        assert again.json()["id"] == first.json()["id"], "the same request, spelled differently"
        assert _active(http) == [first.json()["id"]]

        reused = http.post("/v1/claims", json={"memory": "20GiB"}, headers=key)
        assert reused.status_code == 409
        assert "Idempotency-Key" in reused.json()["detail"]
        assert _active(http) == [first.json()["id"]], "a refused reuse records nothing"


def test_keys_belong_to_one_tenant(fresh_server: ServerProcess) -> None:
    key = {"Idempotency-Key": "nightly-job-42"}
    with _tenant(fresh_server, "team-a") as team_a, _tenant(fresh_server, "team-b") as team_b:
        mine = team_a.post("/v1/claims", json={"memory": "1GiB"}, headers=key).json()
        theirs = team_b.post("/v1/claims", json={"memory": "1GiB"}, headers=key)
        assert theirs.status_code == 201
        assert theirs.json()["id"] != mine["id"]
        assert theirs.json()["tenant"] == "team-b"


@pytest.mark.parametrize("key", ["", "a" * 256, "has space"], ids=["empty", "long", "space"])
def test_a_malformed_key_is_refused(fresh_server: ServerProcess, key: str) -> None:
    with fresh_server.client() as http:
        response = http.post("/v1/claims", json={"memory": "1GiB"}, headers={"Idempotency-Key": key})
        assert response.status_code == 422
        assert _active(http) == []


def test_the_key_survives_a_crash_of_the_server(fresh_server: ServerProcess) -> None:
    key = {"Idempotency-Key": str(uuid.uuid4())}
    with _tenant(fresh_server, "team-a") as http:
        made = http.post("/v1/claims", json={"gpus": 1}, headers=key).json()
        token = http.headers["Authorization"]
    fresh_server.kill9()  # as if the answer had been lost with the server
    fresh_server.start()
    with httpx.Client(base_url=fresh_server.url, headers={"Authorization": token}) as http:
        retried = http.post("/v1/claims", json={"gpus": 1}, headers=key)
        assert retried.status_code == 201
        assert retried.json()["id"] == made["id"]
        assert _active(http) == [made["id"]]
