"""The FastAPI application: routes, auth, error mapping and the background scheduling loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gpupool import __version__
from gpupool.api import hot_routes, management, openapi
from gpupool.api.auth import Authenticator
from gpupool.api.headers import SecurityHeadersMiddleware, allowed_methods
from gpupool.api.limits import DEFAULT_MAX_BODY_BYTES, BodyLimitMiddleware
from gpupool.api.routes import claims, devices, events, health, nodes, session, tenants, vms
from gpupool.errors import GpupoolError
from gpupool.pool import PoolService

log = logging.getLogger("gpupool.api")

SCHEDULE_INTERVAL_S = 1.0
HTTP_ERROR_NAMES = {404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge"}


def create_app(
    pool: PoolService,
    admin_token: str,
    schedule_interval_s: float = SCHEDULE_INTERVAL_S,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # A periodic pass binds claims freed by other processes sharing the store.
        task = asyncio.create_task(_schedule_forever(pool, schedule_interval_s))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            # Here, not after `uvicorn.run` returns: on SIGTERM/SIGINT uvicorn re-raises the signal
            # once it has stopped, so code after `run` never runs.
            for hook in reversed(app.state.shutdown_hooks):
                try:
                    await asyncio.to_thread(hook)
                except Exception:  # one failing hook must not keep the others from running
                    log.exception("shutdown step %s failed", getattr(hook, "__qualname__", hook))

    app = FastAPI(
        title="gpupool",
        version=__version__,
        description="GPU pooling and virtualization: claim virtual GPUs from one pool.",
        lifespan=lifespan,
    )
    app.state.pool = pool
    app.state.shutdown_hooks = []  # callables run (last added first) when the server stops
    app.state.auth = Authenticator(pool.store, admin_token)
    for module in (health, devices, claims, events, tenants, nodes, vms, session):
        app.include_router(module.router)
    management.install(app, pool)  # /metrics, dashboard, stream, quotas
    _install_error_handlers(app)
    # Outermost: a body over the limit is refused before any other layer reads it.
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes)
    openapi.install(app)
    hot_routes.install(app)  # the claim path's routes, matched first
    return app


async def _schedule_forever(pool: PoolService, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await asyncio.to_thread(pool.sync_and_schedule)
        except Exception:  # the loop must outlive one bad pass; the error is logged
            log.exception("scheduling pass failed")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(GpupoolError)
    async def _gpupool_error(_request: Request, exc: GpupoolError) -> JSONResponse:
        status = exc.status_code if 400 <= exc.status_code < 500 else 503
        return JSONResponse({"detail": exc.message, "error": type(exc).__name__}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        messages = [_validation_message(error) for error in exc.errors()]
        return JSONResponse(
            {"detail": "; ".join(messages), "error": "InvalidRequest", "errors": messages}, status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = HTTP_ERROR_NAMES.get(exc.status_code, "HTTPError")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # name every method of the path, not just the first route's
            headers["Allow"] = ", ".join(allowed_methods(request.app, request.scope))
        return JSONResponse(
            {"detail": str(exc.detail), "error": error}, status_code=exc.status_code, headers=headers
        )


def _validation_message(error: Any) -> str:
    """`field: message` for one pydantic error; names the field the user must fix."""
    location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
    if error.get("type") == "json_invalid":
        return f"body: malformed JSON ({error.get('ctx', {}).get('error', 'cannot parse')})"
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    field = ".".join(location) or "body"
    return f"{field}: {message}"
