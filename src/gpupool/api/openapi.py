"""The OpenAPI document says what the server does: one error body for every 4xx/5xx it sends, and
each status an operation can answer, documented on that operation.

FastAPI documents only 422, with its own validation-error shape; gpupool answers every error with
`ErrorBody` (see the handlers in `gpupool.api.app`). So the generated document is post-processed
once: the default validation schemas go, `ErrorBody` comes in, and each operation gets the error
statuses of the table below that apply to it.

It also names the security schemes (bearer token, dashboard session cookie) on every operation that
authenticates through `get_tenant`: they are not runtime dependencies of it (see `gpupool.api.deps`),
so FastAPI would not find them itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.encoders import jsonable_encoder
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from gpupool.api.deps import SECURITY_SCHEMES, get_tenant

ERROR_SCHEMA = "ErrorBody"
ERROR_REF = {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}


class ErrorBody(BaseModel):
    """Every error answer: `detail` says what went wrong and names the field to fix."""

    detail: str = Field(description="one line for people, naming the field or the object")
    error: str = Field(description="the kind of error: InvalidRequest, NotFound, Unauthorized, ...")
    errors: list[str] | None = Field(None, description="422 from validation: one line per invalid field")


# Every error status the server sends, with what it means; the sets below say which operations.
ERROR_STATUSES: dict[int, str] = {
    400: "The body cannot be read as the declared content type",
    401: "No token, a wrong token, or a session that is no longer valid",
    403: "The token is valid but may not do this (e.g. admin only, or another tenant's object)",
    404: "No such claim, tenant or workload (another tenant's objects are not found either)",
    409: "The request is well-formed but conflicts with the pool or with itself: a claim no node "
    "could ever hold, a memory quota below 1 MiB, a reused Idempotency-Key, an existing tenant, a "
    "guarantee above the limit, ...",
    413: "The request body is larger than the server's limit (`serve --max-body`)",
    422: "A parameter or body field is invalid; `detail` names it",
    429: "Too many open event streams for this tenant",
    503: "The store or the node agent cannot serve the request now",
}
_PUBLIC = {413, 422}  # any request can be too large or carry a bad parameter
_AUTHENTICATED = {401, 403, 404, 409, 503}  # operations behind a token
_WITH_BODY = {400}
_STREAM = {429}


def install(app: FastAPI) -> None:
    """Make `app.openapi()` return the post-processed document (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = document_errors(document_security(schema, app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def document_security(schema: dict[str, Any], app: FastAPI) -> dict[str, Any]:
    """Name the security schemes on each documented operation that depends on `get_tenant`, as
    FastAPI names a security dependency's scheme (an alternative each: token or session)."""
    requirements: list[dict[str, list[str]]] = [{scheme.scheme_name: []} for scheme in SECURITY_SCHEMES]
    paths = schema.get("paths", {})
    authenticated = False
    for route in _api_routes(app):
        if not (route.include_in_schema and _depends_on_tenant(route.dependant)):
            continue
        for method in route.methods or ():
            operation = paths.get(route.path_format, {}).get(method.lower())
            if operation is not None:
                operation.setdefault("security", []).extend(requirements)
                authenticated = True
    if authenticated:
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        for scheme in SECURITY_SCHEMES:
            schemes[scheme.scheme_name] = jsonable_encoder(scheme.model, by_alias=True, exclude_none=True)
    return schema


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """Every API route as `get_openapi` sees it: recent FastAPI keeps included routers whole and
    gives each of their routes an effective context (prefix, dependencies); older ones copy them."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in contexts(app.routes) if contexts is not None else app.routes:
        if isinstance(getattr(route, "original_route", route), APIRoute):
            yield route


def _depends_on_tenant(dependant: Dependant) -> bool:
    return any(sub.call is get_tenant or _depends_on_tenant(sub) for sub in dependant.dependencies)


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace FastAPI's validation-error schemas by `ErrorBody` and document each error status."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    components[ERROR_SCHEMA] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            statuses = set(_PUBLIC)
            if operation.get("security"):
                statuses |= _AUTHENTICATED
            if "requestBody" in operation:
                statuses |= _WITH_BODY
            if path == "/v1/stream":
                statuses |= _STREAM
            responses = operation.setdefault("responses", {})
            statuses |= {int(code) for code in responses if code.isdigit() and int(code) >= 400}
            for status in sorted(statuses):
                described = responses.get(str(status), {}).get("description")
                responses[str(status)] = {
                    "description": described if described and status != 422 else ERROR_STATUSES[status],
                    "content": {"application/json": {"schema": ERROR_REF}},
                }
    return schema
