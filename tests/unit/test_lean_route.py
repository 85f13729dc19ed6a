"""`LeanRoute` answers exactly as FastAPI's own `APIRoute` would: the same endpoint is served by both
and every request, valid or not, must get the same status and body from each."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field

from gpupool.api.lean_route import LeanRoute


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=8)
    size: int = Field(1, ge=1, le=64)


async def caller(request: Request) -> str:
    token = request.headers.get("authorization")
    if token != "Bearer good":
        raise HTTPException(401, "who are you")
    return "alice"


Caller = Annotated[str, Depends(caller)]
Key = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=16, pattern=r"^[!-~]+$")]


async def create(body: Body, request: Request, who: Caller, key: Key = None) -> Response:
    answer = {"who": who, "body": body.model_dump(), "key": key, "method": request.method}
    return Response(json.dumps(answer), status_code=201, media_type="application/json")


async def remove(
    item_id: Annotated[str, Path(min_length=2)], who: Caller, limit: Annotated[int, Query(ge=1)] = 10
) -> Response:
    return Response(json.dumps({"who": who, "item": item_id, "limit": limit}), media_type="application/json")


def make_app(route_class: type[APIRoute]) -> FastAPI:
    router = APIRouter(prefix="/v1/items", route_class=route_class)
    router.add_api_route("", create, methods=["POST"], status_code=201)
    router.add_api_route("/{item_id}", remove, methods=["DELETE"])
    app = FastAPI()
    app.include_router(router)
    return app


GOOD = {"Authorization": "Bearer good"}
JSON = {"Content-Type": "application/json"}
CASES: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("POST", "/v1/items", {**GOOD, **JSON}, b'{"name": "a", "size": 2}'),
    ("POST", "/v1/items", {**GOOD, **JSON, "Idempotency-Key": "k-1"}, b'{"name": "a"}'),
    ("POST", "/v1/items", {**GOOD, **JSON, "Idempotency-Key": ""}, b'{"name": "a"}'),
    ("POST", "/v1/items", {**GOOD, **JSON, "Idempotency-Key": "a b"}, b'{"name": "a"}'),
    ("POST", "/v1/items", {**GOOD, **JSON, "Idempotency-Key": "x" * 17}, b'{"name": ""}'),
    ("POST", "/v1/items", {**JSON}, b'{"name": "a"}'),  # 401 before validation
    ("POST", "/v1/items", {**JSON}, b"{not json"),  # malformed JSON: 422 before authentication
    ("POST", "/v1/items", {**GOOD, **JSON}, b"{not json"),
    ("POST", "/v1/items", {**GOOD, **JSON}, b""),
    ("POST", "/v1/items", GOOD, None),
    ("POST", "/v1/items", GOOD, b'{"name": "a"}'),  # no content type
    ("POST", "/v1/items", {**GOOD, "Content-Type": "text/plain"}, b'{"name": "a"}'),
    ("POST", "/v1/items", {**GOOD, "Content-Type": "application/json; charset=utf-8"}, b'{"name": "a"}'),
    ("POST", "/v1/items", {**GOOD, "Content-Type": "application/merge-patch+json"}, b'{"name": "a"}'),
    ("POST", "/v1/items", {**GOOD, **JSON}, b"[1, 2]"),
    ("POST", "/v1/items", {**GOOD, **JSON}, b'{"name": "toolongname", "size": 0, "extra": 1}'),
    ("DELETE", "/v1/items/abc", GOOD, None),
    ("DELETE", "/v1/items/abc?limit=3", GOOD, None),
    ("DELETE", "/v1/items/abc?limit=0", GOOD, None),
    ("DELETE", "/v1/items/abc?limit=x&limit=4", GOOD, None),
    ("DELETE", "/v1/items/a?limit=x", GOOD, None),  # two errors, path and query, together
    ("DELETE", "/v1/items/abc", {}, None),
    ("PUT", "/v1/items/abc", GOOD, None),
]


def answer(client: TestClient, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Any:
    response = client.request(method, path, headers=headers, content=body)
    return response.status_code, response.json()


@pytest.mark.parametrize(("method", "path", "headers", "body"), CASES)
def test_lean_route_answers_as_fastapi_does(
    method: str, path: str, headers: dict[str, str], body: bytes | None
) -> None:
    with TestClient(make_app(APIRoute)) as plain, TestClient(make_app(LeanRoute)) as lean:
        assert answer(lean, method, path, headers, body) == answer(plain, method, path, headers, body)


def test_lean_route_documents_the_same_operations() -> None:
    assert make_app(LeanRoute).openapi() == make_app(APIRoute).openapi()


def sync_endpoint() -> Response:
    return Response()


async def needs_query(q: str) -> str:
    return q


async def with_dependency(value: Annotated[str, Depends(needs_query)]) -> Response:
    return Response(value)


def test_lean_route_refuses_what_it_does_not_support() -> None:
    # (module-level functions: FastAPI resolves the string annotations in the module's namespace)
    for endpoint, problem in ((sync_endpoint, "not a coroutine"), (with_dependency, "needs_query")):
        router = APIRouter(route_class=LeanRoute)
        with pytest.raises(TypeError, match=problem):
            router.add_api_route("/x", endpoint, methods=["GET"])
