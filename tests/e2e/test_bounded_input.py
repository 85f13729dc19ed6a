"""Bounded input, probed as an untrusted tenant would: huge bodies and labels are refused without
the server holding them, and every list is paged and says when there is more."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from serverctl import ServerProcess

MiB = 1024 * 1024
RSS_SLACK = 50 * MiB


@pytest.fixture(scope="module")
def tenant(server: ServerProcess) -> httpx.Client:
    with server.client() as admin:
        token = admin.post("/v1/tenants", json={"name": "bounded"}).json()["token"]
    return server.client(token)


def _chunks(total: int, size: int = MiB) -> Iterator[bytes]:
    """A JSON-looking body streamed in pieces, so the test itself never holds it whole."""
    yield b'{"labels": {"big": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}}'


def _settle_rss(server: ServerProcess, http: httpx.Client) -> int:
    for _ in range(3):  # warm the allocator on ordinary requests before the baseline
        http.post("/v1/claims", json={"memory": "1GiB", "labels": {"k": "v"}})
    return server.rss_bytes()


def test_a_100mb_body_gets_413_and_the_server_does_not_hold_it(
    server: ServerProcess, tenant: httpx.Client
) -> None:
    before = _settle_rss(server, tenant)
    total = 100 * MiB
    declared = tenant.post(
        "/v1/claims",
        content=_chunks(total),
        headers={"Content-Type": "application/json", "Content-Length": str(total + 23)},
    )
    assert declared.status_code == 413, declared.text[:300]
    assert "limit" in declared.json()["detail"]
    streamed = tenant.post("/v1/claims", content=_chunks(total), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413, streamed.text[:300]
    assert streamed.json()["error"] == "PayloadTooLarge"
    grown = server.rss_bytes() - before
    assert grown < RSS_SLACK, f"server RSS grew by {grown / MiB:.0f} MiB"
    assert tenant.get("/v1/claims", params={"limit": 1}).status_code == 200, "the server still serves"


def test_a_10mb_label_is_refused(server: ServerProcess, tenant: httpx.Client) -> None:
    before = _settle_rss(server, tenant)
    label = "x" * (10 * MiB)
    response = tenant.post("/v1/claims", json={"memory": "1GiB", "labels": {"note": label}})
    assert response.status_code in (413, 422), response.text[:300]
    grown = server.rss_bytes() - before
    assert grown < RSS_SLACK, f"server RSS grew by {grown / MiB:.0f} MiB"


@pytest.fixture(scope="module")
def roomy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose body limit lets a 10 MB body in, so the label bounds themselves answer."""
    proc = ServerProcess(home=tmp_path_factory.mktemp("roomy"), extra_args=("--max-body", "64MiB")).start()
    try:
        yield proc
    finally:
        proc.stop()


LABEL_CASES: list[tuple[str, dict[str, Any]]] = [
    ("10mb-value", {"note": "x" * (10 * MiB)}),
    ("long-value", {"note": "x" * 257}),
    ("long-key", {"k" * 64: "v"}),
    ("empty-key", {"": "v"}),
    ("too-many", {f"k{i}": "v" for i in range(33)}),
]


@pytest.mark.parametrize("labels", [c for _, c in LABEL_CASES], ids=[i for i, _ in LABEL_CASES])
def test_labels_beyond_their_bounds_get_422(roomy_server: ServerProcess, labels: dict[str, Any]) -> None:
    with roomy_server.client() as http:
        before = roomy_server.rss_bytes()
        response = http.post("/v1/claims", json={"memory": "1GiB", "labels": labels})
        assert response.status_code == 422, response.text[:300]
        assert "labels" in response.json()["detail"]
        assert http.get("/v1/claims").json()["items"] == [], "nothing was recorded"
        assert roomy_server.rss_bytes() - before < RSS_SLACK


def test_labels_within_their_bounds_are_kept(roomy_server: ServerProcess) -> None:
    labels = {f"k{i}": "v" * 256 for i in range(32)}
    with roomy_server.client() as http:
        claim = http.post("/v1/claims", json={"memory": "1GiB", "labels": labels}).json()
        assert claim["labels"] == labels
        http.delete(f"/v1/claims/{claim['id']}")


def test_claims_are_paged_and_say_when_there_is_more(server: ServerProcess) -> None:
    with server.client() as admin:
        token = admin.post("/v1/tenants", json={"name": "pager"}).json()["token"]
    with server.client(token) as http:
        made = [http.post("/v1/claims", json={"memory": "1GiB"}).json()["id"] for _ in range(5)]
        seen: list[str] = []
        pages = 0
        params: dict[str, Any] = {"limit": 2}
        while True:
            page = http.get("/v1/claims", params=params).json()
            pages += 1
            seen += [c["id"] for c in page["items"]]
            if not page["has_more"]:
                assert page["next_cursor"] is None
                break
            params = {"limit": 2, "cursor": page["next_cursor"]}
        assert pages == 3
        assert seen == list(reversed(made)), "newest first, each claim once"
        for claim_id in made:
            http.delete(f"/v1/claims/{claim_id}")


def test_events_are_paged_from_a_cursor(server: ServerProcess) -> None:
    with server.client() as http:
        tail = http.get("/v1/events", params={"limit": 1}).json()
        assert tail["has_more"] is False
        first = http.get("/v1/events", params={"cursor": "0", "limit": 3}).json()
        assert [e["id"] for e in first["items"]] == sorted(e["id"] for e in first["items"])
        assert first["has_more"] is True
        following = http.get("/v1/events", params={"cursor": first["next_cursor"], "limit": 3}).json()
        assert following["items"][0]["id"] > first["items"][-1]["id"]


def test_devices_filter_and_page(server: ServerProcess) -> None:
    with server.client() as http:
        everything = http.get("/v1/devices").json()
        assert len(everything["items"]) == 8 and everything["has_more"] is False
        node = everything["items"][0]["node"]
        on_node = http.get("/v1/devices", params={"node": node}).json()["items"]
        assert len(on_node) == 4 and {d["node"] for d in on_node} == {node}
        assert http.get("/v1/devices", params={"model": "a100*"}).json()["items"] == []
        assert len(http.get("/v1/devices", params={"model": "h100*"}).json()["items"]) == 8
        claim = http.post("/v1/claims", json={"gpus": 1}).json()
        free = http.get("/v1/devices", params={"free": "true"}).json()["items"]
        used = http.get("/v1/devices", params={"free": "false"}).json()["items"]
        assert claim["bindings"][0]["device_uuid"] in {d["uuid"] for d in used}
        assert len(free) + len(used) == 8
        first = http.get("/v1/devices", params={"limit": 3}).json()
        second = http.get("/v1/devices", params={"limit": 3, "cursor": first["next_cursor"]}).json()
        assert first["has_more"] and second["has_more"]
        assert not {d["uuid"] for d in first["items"]} & {d["uuid"] for d in second["items"]}
        http.delete(f"/v1/claims/{claim['id']}")


def test_a_tenant_may_hold_only_a_few_event_streams(server: ServerProcess, tenant: httpx.Client) -> None:
    streams = []
    try:
        for _ in range(4):
            stream = tenant.stream("GET", "/v1/stream")
            response = stream.__enter__()
            streams.append(stream)
            assert response.status_code == 200
        with tenant.stream("GET", "/v1/stream") as refused:
            assert refused.status_code == 429
            assert "streams" in refused.read().decode()
        with server.client() as admin, admin.stream("GET", "/v1/stream") as other:
            assert other.status_code == 200, "another tenant is not held back by this one"
    finally:
        for stream in streams:
            stream.__exit__(None, None, None)


def test_the_database_file_is_private(server: ServerProcess) -> None:
    database = server.home / "pool.db"
    assert oct(os.stat(database).st_mode & 0o777) == oct(0o600)
