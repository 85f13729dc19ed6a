"""The request body limit: a body over `max_body_bytes` gets 413 and is never held in memory.

A declared `Content-Length` over the limit is refused before a byte of the body is read; a body
sent without one (chunked) is counted as it streams in and refused at the first chunk past the
limit. Either way the server holds at most the limit plus one chunk; the rest of the upload is
read and dropped by the HTTP server as it arrives.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpupool.model import format_size

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""1 MiB: a claim, a tenant or a workload with its environment is a few KiB."""


class BodyTooLarge(HTTPException):
    """Raised from `receive` while the body streams in; FastAPI passes HTTPExceptions through its
    body reader, so the app's HTTP error handler answers 413 in the one error shape."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _message(limit))


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _refuse(send, self.max_body_bytes)
            return
        received = 0

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        await self.app(scope, counted_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server refuses a malformed length itself
    return None


def _message(limit: int) -> str:
    return f"body: larger than this server's limit of {format_size(limit)} (gpupool serve --max-body)"


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps({"detail": _message(limit), "error": "PayloadTooLarge"}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
