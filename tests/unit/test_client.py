"""The SDK maps HTTP errors to gpupool's exception tree (httpx MockTransport, as users would)."""

from __future__ import annotations

import time

import httpx
import pytest

from gpupool import Client
from gpupool.errors import Forbidden, GpupoolError, InvalidRequest, NotFound, ServerUnreachable, Unauthorized


@pytest.mark.parametrize(
    ("status", "error"),
    [(401, Unauthorized), (403, Forbidden), (404, NotFound), (422, InvalidRequest), (400, InvalidRequest)],
)
def test_http_errors_become_gpupool_errors(status: int, error: type[GpupoolError]) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json={"detail": "memory: nope"}))
    with Client(url="http://pool", token="t", transport=transport) as client, pytest.raises(error) as info:
        client.get_claim("c-1")
    assert info.value.message == "memory: nope"


def test_unreachable_server_is_one_clear_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = Client(url="http://pool", token="t", transport=httpx.MockTransport(refuse))
    with client, pytest.raises(ServerUnreachable, match="gpupool serve"):
        client.devices()


def test_token_is_sent_as_bearer() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization", ""))
        return httpx.Response(200, json={"items": []})

    with Client(url="http://pool", token="secret", transport=httpx.MockTransport(answer)) as client:
        assert client.devices() == []
    assert seen == ["Bearer secret"]


def _claim_body(claim_id: str) -> dict[str, object]:
    return {
        "id": claim_id, "tenant": "t", "state": "bound", "reason": "", "gpus": 1, "memory_bytes": None,
        "compute_percent": None, "model": None, "priority": 0, "preemptible": False, "labels": {},
        "bindings": [], "env": {}, "created_at": 0.0, "updated_at": 0.0,
    }  # fmt: skip


def test_a_claim_carries_an_idempotency_key_and_is_retried_with_the_same_one() -> None:
    """The first answer is lost on the way back (the claim was made): the retry carries the same key,
    so the server can return that claim instead of making a second one."""
    keys: list[str] = []

    def lose_the_first_answer(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        if len(keys) == 1:
            raise httpx.ReadError("connection reset", request=request)
        return httpx.Response(201, json=_claim_body("c-1"))

    transport = httpx.MockTransport(lose_the_first_answer)
    with Client(url="http://pool", token="t", transport=transport, retry_s=5) as client:
        assert client.claim(memory="1GiB").id == "c-1"
        client.claim(memory="1GiB")
    assert len(keys) == 3
    assert keys[0] == keys[1], "a retry reuses its key"
    assert keys[2] != keys[0], "a new claim gets a new key"


def test_a_claim_retries_through_a_restart_after_losing_its_answer() -> None:
    """The server dies with the request (reset), refuses connections while it restarts, then
    answers: one key throughout."""
    failures: list[Exception] = [
        httpx.ReadError("reset"),
        httpx.ConnectError("refused"),
        httpx.ConnectError("refused"),
    ]
    keys: list[str] = []

    def crash_then_restart(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        if failures:
            failure = failures.pop(0)
            failure.request = request  # type: ignore[attr-defined]
            raise failure
        return httpx.Response(201, json=_claim_body("c-1"))

    with Client(
        url="http://pool", token="t", transport=httpx.MockTransport(crash_then_restart), retry_s=10
    ) as client:
        assert client.claim().id == "c-1"
    assert len(keys) == 4 and len(set(keys)) == 1


def test_no_server_at_all_is_reported_at_once() -> None:
    """A refused first connection sent nothing: no retry window to sit through."""
    attempts: list[float] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(time.monotonic())
        raise httpx.ConnectError("refused", request=request)

    client = Client(url="http://pool", token="t", transport=httpx.MockTransport(refuse), retry_s=30)
    with client, pytest.raises(ServerUnreachable):
        client.claim()
    assert len(attempts) == 1


def test_a_claim_gives_up_after_its_retry_window() -> None:
    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("reset", request=request)

    client = Client(url="http://pool", token="t", transport=httpx.MockTransport(reset), retry_s=0.6)
    with client, pytest.raises(ServerUnreachable):
        client.claim()


def test_lists_follow_cursors_to_the_last_page() -> None:
    def pages(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        if cursor is None:
            return httpx.Response(
                200, json={"items": [_claim_body("c-2")], "next_cursor": "2", "has_more": True}
            )
        assert cursor == "2"
        return httpx.Response(
            200, json={"items": [_claim_body("c-1")], "next_cursor": None, "has_more": False}
        )

    with Client(url="http://pool", token="t", transport=httpx.MockTransport(pages)) as client:
        assert [c.id for c in client.claims()] == ["c-2", "c-1"]
