"""Tokens and tenant isolation."""

from __future__ import annotations

import httpx
import pytest

from serverctl import ServerProcess


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}],
    ids=["missing", "wrong-token", "wrong-scheme", "empty-token"],
)
@pytest.mark.parametrize("path", ["/v1/devices", "/v1/claims", "/v1/events", "/v1/tenants"])
def test_v1_needs_a_valid_token(server: ServerProcess, headers: dict[str, str], path: str) -> None:
    response = httpx.get(f"{server.url}{path}", headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"]


def test_only_admin_creates_tenants_and_tenants_see_only_their_claims(server: ServerProcess) -> None:
    with server.client() as admin:
        first = admin.post("/v1/tenants", json={"name": "team-a"})
        assert first.status_code == 201
        token_a = first.json()["token"]
        token_b = admin.post("/v1/tenants", json={"name": "team-b"}).json()["token"]
        assert admin.post("/v1/tenants", json={"name": "team-a"}).status_code == 409

    with server.client(token_a) as team_a, server.client(token_b) as team_b:
        assert team_a.post("/v1/tenants", json={"name": "team-c"}).status_code == 403
        claim = team_a.post("/v1/claims", json={"memory": "1GiB", "compute": 5}).json()
        assert claim["tenant"] == "team-a"

        assert team_b.get(f"/v1/claims/{claim['id']}").status_code in (403, 404)
        assert team_b.delete(f"/v1/claims/{claim['id']}").status_code in (403, 404)
        assert team_a.get(f"/v1/claims/{claim['id']}").json()["state"] == "bound", "B changed nothing"
        assert all(c["tenant"] == "team-b" for c in team_b.get("/v1/claims").json()["items"])
        assert claim["id"] not in {e["claim_id"] for e in team_b.get("/v1/events").json()["items"]}
        assert claim["id"] in {c["id"] for c in team_a.get("/v1/claims").json()["items"]}

        assert team_a.delete(f"/v1/claims/{claim['id']}").json()["state"] == "released"

    with server.client() as admin:
        names = {t["name"] for t in admin.get("/v1/tenants").json()["items"]}
        assert {"team-a", "team-b"} <= names
