"""Options every client command shares (server URL, token, --json)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from gpupool.client import Client

UrlOpt = Annotated[str | None, typer.Option("--url", envvar="GPUPOOL_URL", help="gpupool server URL")]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="GPUPOOL_TOKEN", help="bearer token", show_default=False)
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable JSON output")]


def make_client(url: str | None, token: str | None) -> Client:
    """A client for the server named by --url/GPUPOOL_URL, else the user's running default; when
    this user runs several servers, say on stderr which one answers."""
    client = Client(url=url, token=token)
    if client.other_servers:
        others = ", ".join(client.other_servers)
        sys.stderr.write(f"gpupool: talking to {client.url} (also running: {others}; pick one with --url)\n")
    return client
