"""Options every client command shares (server URL, token, --json)."""

from __future__ import annotations

from typing import Annotated

import typer

from gpupool.client import Client

UrlOpt = Annotated[str | None, typer.Option("--url", envvar="GPUPOOL_URL", help="gpupool server URL")]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="GPUPOOL_TOKEN", help="bearer token", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable JSON output")]


def make_client(url: str | None, token: str | None) -> Client:
    return Client(url=url, token=token)
