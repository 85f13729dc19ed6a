"""`HotRoutes` takes the lean routes' requests before the router: every request, valid or not, must
get the same status, body and route as without it; and a route that another could take first is
left to the router."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send
from test_lean_route import CASES, create, make_app, remove

from gpupool.api import hot_routes
from gpupool.api.app import create_app
from gpupool.devices import SimulatedBackend
from gpupool.pool import PoolService
from gpupool.scheduler import make_placer
from gpupool.store import Store

MORE_CASES: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("DELETE", "/v1/items/abc/", {"Authorization": "Bearer good"}, None),  # not this route's path
    ("DELETE", "/v1/items", {"Authorization": "Bearer good"}, None),  # 405 from the router
    ("GET", "/v1/items/abc", {"Authorization": "Bearer good"}, None),
    ("DELETE", "/v1/items/a%2Fb", {"Authorization": "Bearer good"}, None),
]


class RouteSeen:
    """Records what the router (or `HotRoutes`) put in the scope, as a middleware would read it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[Any, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            self.seen.append((getattr(route, "path", None), scope.get("path_params")))


def with_hot_routes() -> FastAPI:
    app = make_app(hot_routes.LeanRoute)
    hot_routes.install(app)
    return app


def answer(client: TestClient, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Any:
    response = client.request(method, path, headers=headers, content=body)
    kept = {name: value for name, value in response.headers.items() if name != "date"}
    return response.status_code, response.content, kept


@pytest.mark.parametrize(("method", "path", "headers", "body"), CASES + MORE_CASES)
def test_hot_routes_answer_as_the_router_does(
    method: str, path: str, headers: dict[str, str], body: bytes | None
) -> None:
    plain_app, hot_app = make_app(APIRoute), with_hot_routes()
    seen = {}
    for name, app in (("plain", plain_app), ("hot", hot_app)):
        app.add_middleware(RouteSeen)
        with TestClient(app) as client:
            seen[name] = answer(client, method, path, headers, body)
            middleware: Any = app.middleware_stack
            while not isinstance(middleware, RouteSeen):
                middleware = middleware.app
            seen[name] += (middleware.seen,)
    assert seen["hot"] == seen["plain"]


def test_hot_routes_take_the_lean_routes_only() -> None:
    app = with_hot_routes()
    table = list(hot_routes.hot_routes(app))
    assert [(sorted(hot.methods), hot.path_format) for hot in table] == [
        (["POST"], "/v1/items"),
        (["DELETE"], "/v1/items/{item_id}"),
    ]
    assert table[1].match("DELETE", "/v1/items/x-1") == {"item_id": "x-1"}
    assert table[1].match("GET", "/v1/items/x-1") is None
    assert table[1].match("DELETE", "/v1/items/x/y") is None


async def shadow(request: Request) -> Response:
    return Response("shadow")


def test_a_route_that_could_take_the_path_first_keeps_the_router() -> None:
    app = FastAPI()
    earlier = APIRouter()
    earlier.add_api_route("/v1/items/{anything}", shadow, methods=["DELETE"])
    app.include_router(earlier)
    router = APIRouter(prefix="/v1/items", route_class=hot_routes.LeanRoute)
    router.add_api_route("", create, methods=["POST"], status_code=201)
    router.add_api_route("/{item_id}", remove, methods=["DELETE"])
    app.include_router(router)
    hot_routes.install(app)
    assert [hot.path_format for hot in hot_routes.hot_routes(app)] == ["/v1/items"]
    with TestClient(app) as client:
        assert client.delete("/v1/items/abc", headers={"Authorization": "Bearer good"}).text == "shadow"


def test_the_claim_routes_of_gpupool_are_hot(tmp_path: Path) -> None:
    pool = PoolService(Store(tmp_path / "pool.db"), SimulatedBackend("1x2xH100-80GB"), make_placer())
    pool.start()
    app = create_app(pool, "admin-token-for-the-test")
    assert [(sorted(hot.methods), hot.path_format) for hot in hot_routes.hot_routes(app)] == [
        (["POST"], "/v1/claims"),
        (["DELETE"], "/v1/claims/{claim_id}"),
    ]
    found = list(hot_routes._lean_routes(app))
    others = [
        effective
        for route, effective in hot_routes._routes_with_context(app.router.routes)
        if not any(route is hot.route for hot in found)
    ]
    assert len(others) > 20  # every other route was checked
    assert all(not hot_routes.shadowing(hot, others) for hot in found)
