"""The bad-input table: every bad body gets a 4xx naming the field, and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from serverctl import ServerProcess

BAD_BODIES: list[tuple[str, Any, str]] = [
    ("negative-memory", {"memory": -5}, "memory"),
    ("zero-memory", {"memory": 0}, "memory"),
    ("zero-memory-string", {"memory": "0GiB"}, "memory"),
    ("unparsable-memory", {"memory": "ten gigs"}, "memory"),
    ("unknown-unit", {"memory": "10XB"}, "memory"),
    ("memory-list", {"memory": [1]}, "memory"),
    ("memory-huge", {"memory": 10**30}, "memory"),
    ("memory-huge-unit", {"memory": "99999999999999999999TiB"}, "memory"),
    ("compute-zero", {"compute": 0}, "compute"),
    ("compute-101", {"compute": 101}, "compute"),
    ("compute-negative", {"compute": -3}, "compute"),
    ("compute-text", {"compute": "lots"}, "compute"),
    ("compute-fraction", {"compute": 2.5}, "compute"),
    ("gpus-zero", {"gpus": 0}, "gpus"),
    ("gpus-negative", {"gpus": -1}, "gpus"),
    ("gpus-string", {"gpus": "1"}, "gpus"),
    ("gpus-float", {"gpus": 1.5}, "gpus"),
    ("gpus-bool", {"gpus": True}, "gpus"),
    ("gpus-huge", {"gpus": 100000}, "gpus"),
    ("priority-string", {"priority": "high"}, "priority"),
    ("labels-not-dict", {"labels": ["a"]}, "labels"),
    ("unknown-field", {"gpu": 1}, "gpu"),
    ("body-not-object", [1, 2], "body"),
]


def _snapshot(server: ServerProcess) -> tuple[int, int]:
    with server.client() as http:
        claims = http.get("/v1/claims", params={"state": ["pending", "bound", "released"]}).json()["items"]
        events = http.get("/v1/events", params={"limit": 10000}).json()["items"]
    return len(claims), len(events)


@pytest.mark.parametrize(
    ("body", "field"), [(b, f) for _, b, f in BAD_BODIES], ids=[i for i, _, _ in BAD_BODIES]
)
def test_bad_claim_body_is_rejected_with_field_name(server: ServerProcess, body: Any, field: str) -> None:
    before = _snapshot(server)
    with server.client() as http:
        response = http.post("/v1/claims", json=body)
    assert response.status_code in (400, 422), response.text
    assert field in response.json()["detail"]
    assert _snapshot(server) == before


def test_malformed_json_is_rejected(server: ServerProcess) -> None:
    before = _snapshot(server)
    with server.client() as http:
        response = http.post(
            "/v1/claims", content=b'{"gpus": 1,', headers={"Content-Type": "application/json"}
        )
    assert response.status_code in (400, 422)
    assert "JSON" in response.json()["detail"]
    assert _snapshot(server) == before


@pytest.mark.parametrize("state", ["nonsense", "BOUND"], ids=["unknown", "wrong-case"])
def test_bad_state_filter_is_rejected(server: ServerProcess, state: str) -> None:
    with server.client() as http:
        response = http.get("/v1/claims", params={"state": state})
    assert response.status_code in (400, 422)
    assert "state" in response.json()["detail"]


@pytest.mark.parametrize(
    "name", ["", "Bad Name", "admin", "x" * 80, "-lead"], ids=["empty", "space", "admin", "long", "dash"]
)
def test_bad_tenant_name_is_rejected(server: ServerProcess, name: str) -> None:
    with server.client() as http:
        response = http.post("/v1/tenants", json={"name": name})
    assert response.status_code in (400, 422)
    assert "name" in response.json()["detail"]
