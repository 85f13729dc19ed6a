"""Tokens and sessions, probed as an untrusted tenant would: a rotated token is dead at once, a
deleted tenant's claims are released, a tenant sees only its own claim ids on devices, and the
dashboard's session is an HttpOnly, SameSite=Strict cookie that dies with its token."""

from __future__ import annotations

import httpx
import pytest

from runctl import gpupool
from serverctl import ServerProcess


def _tenant(server: ServerProcess, name: str) -> str:
    with server.client() as admin:
        response = admin.post("/v1/tenants", json={"name": name})
        assert response.status_code == 201, response.text
        return str(response.json()["token"])


def test_a_rotated_token_gets_401_at_once(server: ServerProcess) -> None:
    old = _tenant(server, "rotate-me")
    with server.client(old) as http:
        claim = http.post("/v1/claims", json={"memory": "1GiB"}).json()
    rotated = gpupool(server, "tenants", "rotate", "rotate-me", "--json")
    assert rotated.returncode == 0, rotated.stderr
    new = httpx.Response(200, content=rotated.stdout).json()["token"]
    assert new != old
    with server.client(old) as http:
        refused = http.get("/v1/claims")
        assert refused.status_code == 401
        assert http.delete(f"/v1/claims/{claim['id']}").status_code == 401
    with server.client(new) as http:
        mine = http.get(f"/v1/claims/{claim['id']}").json()
        assert mine["state"] == "bound", "rotation keeps the tenant's claims"
        http.delete(f"/v1/claims/{claim['id']}")


def test_only_the_admin_rotates_and_deletes(server: ServerProcess) -> None:
    token = _tenant(server, "not-admin")
    _tenant(server, "victim")
    with server.client(token) as http:
        assert http.post("/v1/tenants/victim/token").status_code == 403
        assert http.delete("/v1/tenants/victim").status_code == 403
    with server.client() as admin:
        assert admin.post("/v1/tenants/nobody/token").status_code == 404
        assert admin.delete("/v1/tenants/nobody").status_code == 404


def test_a_deleted_tenants_claims_are_released_and_its_token_dies(server: ServerProcess) -> None:
    token = _tenant(server, "leaving")
    with server.client(token) as http:
        bound = [http.post("/v1/claims", json={"gpus": 4}).json() for _ in range(2)]
        waiting = http.post("/v1/claims", json={"gpus": 4}).json()
    assert [c["state"] for c in bound] == ["bound", "bound"] and waiting["state"] == "pending"
    stays = _tenant(server, "staying")
    with server.client(stays) as http:
        queued = http.post("/v1/claims", json={"gpus": 2}).json()
        assert queued["state"] == "pending", "the pool is full"

    deleted = gpupool(server, "tenants", "delete", "leaving", "--yes", "--json")
    assert deleted.returncode == 0, deleted.stderr
    released = httpx.Response(200, content=deleted.stdout).json()["released"]
    assert sorted(released) == sorted([c["id"] for c in bound] + [waiting["id"]])

    with server.client(token) as http:
        assert http.get("/v1/claims").status_code == 401
    with server.client() as admin:
        for claim_id in released:
            assert admin.get(f"/v1/claims/{claim_id}").json()["state"] == "released"
        names = {t["name"] for t in admin.get("/v1/tenants").json()["items"]}
        assert "leaving" not in names
        actions = [e["action"] for e in admin.get("/v1/events", params={"limit": 50}).json()["items"]]
        assert "tenant.deleted" in actions
    with server.client(stays) as http:
        assert http.get(f"/v1/claims/{queued['id']}").json()["state"] == "bound", "the freed GPUs went on"
        http.delete(f"/v1/claims/{queued['id']}")


def test_devices_show_a_tenant_only_its_own_claim_ids(server: ServerProcess) -> None:
    with server.client(_tenant(server, "ids-a")) as team_a, server.client(_tenant(server, "ids-b")) as team_b:
        theirs = team_a.post("/v1/claims", json={"memory": "10GiB", "compute": 10}).json()
        device = theirs["bindings"][0]["device_uuid"]
        mine = team_b.post("/v1/claims", json={"memory": "10GiB", "compute": 10, "model": "H100*"}).json()
        seen_by_b = {d["uuid"]: d for d in team_b.get("/v1/devices").json()["items"]}
        all_ids_b = {cid for d in seen_by_b.values() for cid in d["claims"]}
        assert theirs["id"] not in all_ids_b
        assert mine["id"] in all_ids_b
        assert seen_by_b[device]["memory_allocated_bytes"] >= 10 * 1024**3, "usage stays visible"
        with server.client() as admin:
            all_ids = {cid for d in admin.get("/v1/devices").json()["items"] for cid in d["claims"]}
        assert {theirs["id"], mine["id"]} <= all_ids
        team_a.delete(f"/v1/claims/{theirs['id']}")
        team_b.delete(f"/v1/claims/{mine['id']}")


def test_the_dashboard_session_is_a_strict_httponly_cookie(server: ServerProcess) -> None:
    token = _tenant(server, "browser")
    with httpx.Client(base_url=server.url) as browser:
        assert browser.post("/v1/session", json={"token": "gpt_wrong"}).status_code == 401
        signed_in = browser.post("/v1/session", json={"token": token})
        assert signed_in.status_code == 200
        assert signed_in.json()["tenant"] == "browser"
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert token not in cookie, "the cookie is not the token"

        assert browser.get("/v1/claims").status_code == 200, "the cookie authenticates reads"
        forged = browser.post("/v1/claims", json={"memory": "1GiB"})
        assert forged.status_code == 403, "a change by cookie needs the CSRF header"
        made = browser.post("/v1/claims", json={"memory": "1GiB"}, headers={"X-Gpupool-Csrf": "1"})
        assert made.status_code == 201 and made.json()["tenant"] == "browser"
        with browser.stream("GET", "/v1/stream") as stream:
            assert stream.status_code == 200, "the event stream authenticates by cookie"

        assert gpupool(server, "tenants", "rotate", "browser").returncode == 0
        assert browser.get("/v1/claims").status_code == 401, "rotation ends the session"
        signed_out = browser.delete("/v1/session")
        assert signed_out.status_code == 204
        assert "Max-Age=0" in signed_out.headers["set-cookie"], "the browser forgets the cookie"


def test_a_token_in_the_url_is_not_accepted(server: ServerProcess) -> None:
    token = _tenant(server, "url-token")
    response = httpx.get(f"{server.url}/v1/stream", params={"token": token})
    assert response.status_code == 401


def test_a_forged_session_cookie_is_refused(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, cookies={"gpupool_session": "eyJ0IjoiYWRtaW4ifQ.AAAA"}) as forged:
        assert forged.get("/v1/claims").status_code == 401


@pytest.mark.parametrize("path", ["/", "/v1/devices", "/static/app.js"])
def test_pages_and_answers_carry_security_headers(server: ServerProcess, path: str) -> None:
    with server.client() as http:
        response = http.get(path)
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
