"""A route class for the claim path's hot operations: the same contract, less framework per request.

FastAPI's own request handler is general: for every request it walks the dependency tree, computes
cache keys and scopes for each dependency, checks each for generators, builds a sub-response, an
exit stack and a telemetry context. On `POST /v1/claims` and `DELETE /v1/claims/{id}` that was about
half of the server's CPU per claim+release round trip (BENCHMARKS.md, issue 14).

`LeanRoute` keeps everything the client or the OpenAPI document can see: the route is an `APIRoute`
(matched, documented and wrapped by the middlewares and exception handlers as before), its
parameters and body are validated by FastAPI's own functions (`request_params_to_args`,
`request_body_to_args`) in FastAPI's order (body read and JSON parsed, then the dependencies, then
path/query/header/cookie parameters and the body, all errors reported together as one
`RequestValidationError`). What it leaves out is only what these endpoints do not use, and it refuses,
when the route is built, an endpoint that would need it: dependencies other than coroutines taking
just the `Request`, generator dependencies, sub-dependencies, `Response`/`BackgroundTasks`/security
scope parameters, form bodies, and an endpoint that is not a coroutine. The endpoint must return a
`Response` (it serialises its answer once itself, see `gpupool.api.convert.claim_json`).
`app.dependency_overrides` does not apply to these routes (nothing in gpupool uses it).
"""

from __future__ import annotations

import email.message
import inspect
import json
from collections.abc import Callable, Coroutine
from operator import attrgetter
from typing import Any, TypeVar

import fastapi.dependencies.utils as fastapi_utils
import fastapi.routing
from fastapi import params
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import request_body_to_args, request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, APIRouter
from pydantic_core import PydanticUndefined
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

# Recent FastAPI builds an included route's handler with this context set; older ones have none.
_EFFECTIVE_ROUTE = getattr(fastapi.routing, "_effective_route_context_var", None)
Handler = Callable[[Request], Coroutine[Any, Any, Response]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Coroutine[Any, Any, Response]])


class LeanRoute(APIRoute):
    """An `APIRoute` answered by `lean_handler` (see the module's docstring for what it supports)."""

    def get_route_handler(self) -> Handler:
        # Built once per route and once per router that includes it; an included route answers with
        # its effective context (the include's prefix and dependencies), as in `APIRoute`.
        effective = _EFFECTIVE_ROUTE.get() if _EFFECTIVE_ROUTE is not None else None
        if effective is not None and effective.original_route is self:
            return lean_handler(effective)
        return lean_handler(self)


def lean_route(
    router: APIRouter, path: str, *, methods: list[str], **options: Any
) -> Callable[[Endpoint], Endpoint]:
    """Like `@router.post(path, ...)`, for an endpoint answered by `LeanRoute`."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(path, endpoint, methods=methods, route_class_override=LeanRoute, **options)
        return endpoint

    return register


def lean_handler(route: Any) -> Handler:
    """The handler of `route` (an `APIRoute`, or FastAPI's effective context of an included one)."""
    dependant = route.dependant
    _check_supported(route)
    endpoint = dependant.call
    assert endpoint is not None
    dependencies = [(sub.name, sub.call) for sub in dependant.dependencies]
    body_fields = dependant.body_params
    embed_body_fields = route._embed_body_fields
    strict = getattr(route, "strict_content_type", False)  # older FastAPI: JSON without a content type too
    strict_content_type = bool(getattr(strict, "value", strict))
    params_from = [  # only the kinds this endpoint declares (each costs a lookup per request)
        (_params_reader(fields), attrgetter(source))
        for fields, source in (
            (dependant.path_params, "path_params"),
            (dependant.query_params, "query_params"),
            (dependant.header_params, "headers"),
            (dependant.cookie_params, "cookies"),
        )
        if fields
    ]
    read_body = _body_reader(body_fields, embed_body_fields) if body_fields else None
    request_param = dependant.request_param_name

    async def handle(request: Request) -> Response:
        body: Any = PydanticUndefined  # no body: "Field required", as FastAPI says
        if body_fields:
            body = await _read_json_body(request, strict_content_type)
        values: dict[str, Any] = {}
        for name, call in dependencies:  # each raises its own error (e.g. 401) before validation
            assert call is not None
            solved = await call(request)
            if name is not None:
                values[name] = solved
        errors: list[Any] = []
        for read_params, source in params_from:
            found, problems = read_params(source(request))
            values.update(found)
            errors += problems
        if read_body is not None:
            found, problems = await read_body(body)
            values.update(found)
            errors += problems
        if errors:
            raise RequestValidationError(errors, body=body)
        if request_param:
            values[request_param] = request
        response = await endpoint(**values)
        if not isinstance(response, Response):
            raise TypeError(f"{route.path}: a LeanRoute endpoint must return a Response")
        return response

    return handle


ParamsReader = Callable[[Any], tuple[dict[str, Any], list[Any]]]
BodyReader = Callable[[Any], Coroutine[Any, Any, tuple[dict[str, Any], list[Any]]]]


def _params_reader(fields: list[Any]) -> ParamsReader:
    """`request_params_to_args(fields, ...)`, with what it works out per request from the fields
    alone (aliases, whether a field is a model or a sequence) worked out once here. Only for plain
    fields (one value, not a model, not a sequence, not Json) and a FastAPI with the same internals;
    anything else is read by `request_params_to_args` itself."""
    get_param_model = getattr(fastapi_utils, "_get_param_model", None)
    get_aliases = getattr(fastapi_utils, "_get_param_aliases", None)
    validate = getattr(fastapi_utils, "_validate_value_with_model_field", None)
    is_json = getattr(fastapi_utils, "_is_json_field", None)
    is_sequence = getattr(fastapi_utils, "field_annotation_is_sequence", None)
    if (
        get_param_model is None
        or get_aliases is None
        or validate is None
        or is_json is None
        or is_sequence is None
    ):
        return lambda received: request_params_to_args(fields, received)
    plain = [
        field
        for field in fields
        if get_param_model(field) is None
        and not is_json(field)
        and not is_sequence(field.field_info.annotation)
        and isinstance(field.field_info, params.Param)
    ]
    if len(plain) != len(fields):
        return lambda received: request_params_to_args(fields, received)
    compiled = [
        (field, field.name, [key for _alias, key in get_aliases(field)], field.field_info.in_.value)
        for field in fields
    ]

    def read(received: Any) -> tuple[dict[str, Any], list[Any]]:
        values: dict[str, Any] = {}
        errors: list[Any] = []
        for field, name, keys, source in compiled:
            key = next((key for key in keys if key in received), keys[0])
            value = received.get(key, None)
            found, problems = validate(
                field=field,
                value=PydanticUndefined if value is None else value,
                values=values,
                loc=(source, key),
            )
            if problems:
                errors.extend(problems)
            else:
                values[name] = found
        return values, errors

    return read


def _body_reader(body_fields: list[Any], embed_body_fields: bool) -> BodyReader:
    """`request_body_to_args` for these fields; for one top-level JSON body (what the claim path
    has), FastAPI's own validation of it without the per-request checks of the fields' shape."""

    async def general(body: Any) -> tuple[dict[str, Any], list[Any]]:
        return await request_body_to_args(
            body_fields=body_fields, received_body=body, embed_body_fields=embed_body_fields
        )

    validate = getattr(fastapi_utils, "_validate_value_with_model_field", None)
    should_embed = getattr(fastapi_utils, "_should_embed_body_fields", None)
    form_models = getattr(fastapi_utils, "_get_form_models", None)
    if validate is None or should_embed is None or form_models is None:
        return general
    if len(body_fields) != 1 or embed_body_fields or should_embed(body_fields) or form_models(body_fields[0]):
        return general
    field = body_fields[0]
    loc = ("body",)

    async def single(body: Any) -> tuple[dict[str, Any], list[Any]]:
        # JSON never parses to form data (the one case `request_body_to_args` treats apart here)
        found, problems = validate(field=field, value=body, values={}, loc=loc)
        return {field.name: found}, problems

    return single


async def _read_json_body(request: Request, strict_content_type: bool) -> Any:
    """The body as FastAPI reads it for a JSON body parameter: parsed when the content type says
    JSON (or none is given and the route is not strict), else the raw bytes (which then fail
    validation); malformed JSON is a 422 `json_invalid`, an unreadable body a 400."""
    try:
        raw = await request.body()
        if not raw:
            return PydanticUndefined
        content_type = request.headers.get("content-type")
        if content_type == "application/json":  # what clients send; the rest is parsed below
            return json.loads(raw)
        if not content_type:
            return json.loads(raw) if not strict_content_type else raw
        message = email.message.Message()
        message["content-type"] = content_type
        subtype = message.get_content_subtype()
        if message.get_content_maintype() == "application" and (
            subtype == "json" or subtype.endswith("+json")
        ):
            return json.loads(raw)
        return raw
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}], body=exc.doc) from exc
    except HTTPException:  # e.g. the body limit's 413, raised while the body streams in
        raise
    except Exception as exc:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc


def _check_supported(route: Any) -> None:
    dependant = route.dependant
    unsupported = []
    if not inspect.iscoroutinefunction(dependant.call):
        unsupported.append("the endpoint is not a coroutine")
    for sub in dependant.dependencies:
        if not _request_only_coroutine(sub):
            unsupported.append(
                f"dependency {getattr(sub.call, '__name__', sub.call)!r} is not `async def f(request)`"
            )
    if any(isinstance(field.field_info, params.Form) for field in dependant.body_params):
        unsupported.append("form bodies")
    special = (
        dependant.http_connection_param_name,
        dependant.websocket_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
        dependant.security_scopes_param_name,
    )
    if any(special):
        unsupported.append("Response/BackgroundTasks/SecurityScopes/HTTPConnection parameters")
    if unsupported:
        raise TypeError(f"LeanRoute {route.path}: not supported: {'; '.join(unsupported)}")


def _request_only_coroutine(sub: Dependant) -> bool:
    """`async def f(request: Request)`, with nothing else for FastAPI to resolve."""
    return (
        inspect.iscoroutinefunction(sub.call)
        and sub.request_param_name is not None
        and not sub.dependencies
        and not (
            sub.path_params or sub.query_params or sub.header_params or sub.cookie_params or sub.body_params
        )
        and not (sub.response_param_name or sub.background_tasks_param_name or sub.security_scopes_param_name)
    )
