"""The SDK maps HTTP errors to gpupool's exception tree (httpx MockTransport, as users would)."""

from __future__ import annotations

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
