"""One HTTPS server for kube-scheduler's extender calls and the API server's admission webhook
(HAMi's shape), run beside gpupool's REST API in its own thread.

    POST /scheduler/filter | /scheduler/prioritize | /scheduler/bind   (extender)
    POST /webhook/mutate                                                (AdmissionReview v1)
    GET  /healthz

Bodies are bounded (`MAX_BODY_BYTES`); a body that is not a JSON object is a 400.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import uvicorn
from fastapi import Depends, FastAPI, HTTPException, Request

from gpupool.errors import InvalidRequest
from gpupool.kube import webhook
from gpupool.kube.extender import Extender

log = logging.getLogger("gpupool.kube")

MAX_BODY_BYTES = 8 * 1024 * 1024  # a filter call with full Node objects for ~1,000 nodes
START_TIMEOUT_S = 10.0
T = TypeVar("T")


async def _json_body(request: Request) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        raise HTTPException(413, f"body larger than {MAX_BODY_BYTES} bytes")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise HTTPException(413, f"body larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        raise HTTPException(400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "body is not a JSON object")
    return body


Body = Annotated[dict[str, Any], Depends(_json_body)]


def create_kube_app(extender: Extender, scheduler_name: str | None = None) -> FastAPI:
    """The extender + webhook app (no OpenAPI page: its callers are kube-scheduler and the API server)."""
    app = FastAPI(title="gpupool kubernetes", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/scheduler/filter")
    def filter_nodes(body: Body) -> dict[str, Any]:
        return _bad_request_on_invalid(extender.filter, body)

    @app.post("/scheduler/prioritize")
    def prioritize(body: Body) -> list[dict[str, Any]]:
        return _bad_request_on_invalid(extender.prioritize, body)

    @app.post("/scheduler/bind")
    def bind(body: Body) -> dict[str, Any]:
        return extender.bind(body)

    @app.post("/webhook/mutate")
    def mutate(body: Body) -> dict[str, Any]:
        return _bad_request_on_invalid(webhook.review, body, scheduler_name)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _bad_request_on_invalid(handler: Callable[..., T], *args: Any) -> T:
    try:
        return handler(*args)
    except InvalidRequest as exc:
        raise HTTPException(400, exc.message) from None


class KubeHttpsServer:
    """uvicorn serving the kube app with TLS in a daemon thread."""

    def __init__(self, app: FastAPI, host: str, port: int, certfile: str, keyfile: str) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            ssl_certfile=certfile,
            ssl_keyfile=keyfile,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.url = f"https://{host}:{port}"
        self._thread = threading.Thread(target=self.server.run, name="gpupool-kube-https", daemon=True)

    def start(self) -> None:
        """Start serving; raise InvalidRequest if it is not up within `START_TIMEOUT_S`."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise InvalidRequest(f"--kube-port: the extender/webhook server did not start on {self.url}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=3)
