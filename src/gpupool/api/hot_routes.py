"""A short way to the claim path's routes: matched first, answered without FastAPI's route wrapper.

Every request walks the application's routes in order until one matches: FastAPI's included routers
each scan their own routes (and match the winner twice: once to choose the router, once inside it),
and the chosen route then runs its handler inside `request_response`, which builds two exit stacks
and a second layer of exception handling. On `POST /v1/claims` and `DELETE /v1/claims/{id}` that
was about a tenth of the server's CPU per claim+release round trip (BENCHMARKS.md, issue 14).

`HotRoutes` sits inside the application's middlewares and exception handling, just in front of its
router. A request whose method and path match one of the `LeanRoute`s is handed straight to that
route's handler; everything else goes to the router exactly as before. What the client sees is the
same: the route sets the same scope keys the router would (`route`, `endpoint`, `path_params`,
`router`), an error is answered by the application's own exception handlers (in `ExceptionMiddleware`,
the same handlers `request_response` would have called), and a method the route does not serve, or a
path it does not match, takes the ordinary way (404, 405 with its `Allow` list, redirects).

The table is built on the first request, once every route is registered. It holds only the lean
routes that no other route could take first: a route registered earlier that also matches one of
their paths would win the ordinary scan, so `shadowing` checks the table against every other route
(tests/api/test_hot_routes.py runs it on the real application).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.convertors import Convertor
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from gpupool.api.lean_route import Handler, LeanRoute, lean_handler


def _telemetry_hook() -> Callable[..., None] | None:
    """FastAPI's (0.165+) hook naming the route of a traced request (its OpenTelemetry bridge; a
    no-op unless tracing is configured); None in a FastAPI without it."""
    try:
        from fastapi.telemetry import _api
    except ImportError:  # pragma: no cover - depends on the installed FastAPI
        return None
    hook: Callable[..., None] | None = getattr(_api, "_route_selected", None)
    return hook


_route_selected = _telemetry_hook()


@dataclass(frozen=True)
class HotRoute:
    methods: frozenset[str]
    path_regex: re.Pattern[str]
    convertors: dict[str, Convertor[Any]]
    path_format: str
    route: APIRoute  # what the router would put in scope["route"]
    endpoint: Callable[..., Any]
    handler: Handler

    def match(self, method: str, path: str) -> dict[str, Any] | None:
        """The path parameters when this route takes the request, else None."""
        if method not in self.methods:
            return None
        found = self.path_regex.match(path)
        if found is None:
            return None
        return {name: self.convertors[name].convert(value) for name, value in found.groupdict().items()}


class HotRoutes:
    """ASGI app in front of the application's router (see the module's docstring)."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.table: tuple[HotRoute, ...] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        table = self.table
        if table is None:
            table = self.table = tuple(hot_routes(self.fastapi_app))
        # A root path (a server behind a prefix) takes the ordinary way: the router strips it.
        if scope["type"] == "http" and not scope.get("root_path"):
            method, path = scope["method"], scope["path"]
            for hot in table:
                params = hot.match(method, path)
                if params is not None:
                    await self._answer(hot, params, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _answer(
        self, hot: HotRoute, params: dict[str, Any], scope: Scope, receive: Receive, send: Send
    ) -> None:
        scope.setdefault("router", self.fastapi_app.router)
        scope["endpoint"] = hot.endpoint
        scope["path_params"] = {**scope.get("path_params", {}), **params}
        scope["route"] = hot.route
        if _route_selected is not None:
            _route_selected(scope=scope, path=hot.path_format)
        response = await hot.handler(Request(scope, receive, send))
        await response(scope, receive, send)


def install(app: FastAPI) -> None:
    """Put `HotRoutes` in front of the app's router (inside its middlewares and error handling)."""
    app.router.middleware_stack = HotRoutes(app.router.middleware_stack, app)


def hot_routes(app: FastAPI) -> Iterator[HotRoute]:
    """The app's lean routes that no other route shadows, in registration order."""
    found = list(_lean_routes(app))
    others = [
        effective
        for route, effective in _routes_with_context(app.router.routes)
        if not any(route is hot.route for hot in found)
    ]
    for hot in found:
        if getattr(hot.route, "max_body_size", None) is None and not shadowing(hot, others):
            yield hot


def shadowing(hot: HotRoute, others: list[Any]) -> list[str]:
    """The other routes that could take a request `hot` matches (by method and path); each path is
    tried with every parameter filled in by a sample value, both ways round."""
    found = []
    hot_sample = _sample_path(hot.path_format)
    for other in others:
        methods = getattr(other, "methods", None)
        if methods is not None and not (set(methods) & hot.methods):
            continue
        other_format = getattr(other, "path_format", None)
        other_regex = getattr(other, "path_regex", None)
        if other_format is None or other_regex is None:  # a mount or host: could take anything
            found.append(repr(other))
        elif hot.path_regex.match(_sample_path(other_format)) or other_regex.match(hot_sample):
            found.append(f"{sorted(methods or ())} {other_format}")
    return found


def _sample_path(path_format: str) -> str:
    return re.sub(r"{[^}]+}", "sample", path_format)


def _lean_routes(app: FastAPI) -> Iterator[HotRoute]:
    for route, effective in _routes_with_context(app.router.routes):
        if isinstance(route, LeanRoute) and route.methods:
            yield HotRoute(
                methods=frozenset(effective.methods or route.methods),
                path_regex=effective.path_regex,
                convertors=dict(effective.param_convertors),
                path_format=effective.path_format,
                route=route,
                endpoint=effective.endpoint or route.endpoint,
                handler=lean_handler(effective),
            )


def _routes_with_context(routes: list[BaseRoute]) -> Iterator[tuple[BaseRoute, Any]]:
    """(the route, what the router matches for it): FastAPI (0.165+) keeps an included router's
    routes behind an `_IncludedRouter` and matches each through its effective context."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is None:
            yield route, route
            continue
        for context in contexts():
            original = context.original_route
            starlette_route = None if isinstance(original, APIRoute) else context.starlette_route
            yield original, starlette_route or context
