"""`gpupool tenants list|create`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gpupool.cli.common import JsonOpt, TokenOpt, UrlOpt, make_client
from gpupool.cli.output import clock, console, print_json

app = typer.Typer(help="Manage tenants (admin).", no_args_is_help=True)


@app.command("list")
def list_tenants(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List tenants."""
    with make_client(url, token) as client:
        items = client.tenants()
    if as_json:
        print_json(items)
        return
    table = Table(title="tenants", title_justify="left")
    table.add_column("NAME")
    table.add_column("CREATED")
    for t in items:
        table.add_row(t.name, clock(t.created_at))
    console.print(table)


@app.command("create")
def create_tenant(
    name: Annotated[str, typer.Argument(help="tenant name, e.g. team-a")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a tenant and print its token (shown once; keep it safe)."""
    with make_client(url, token) as client:
        created = client.create_tenant(name)
    if as_json:
        print_json(created)
        return
    console.print(f"tenant [bold]{created.name}[/] created; its token (shown once):")
    console.print(created.token, highlight=False, soft_wrap=True)
