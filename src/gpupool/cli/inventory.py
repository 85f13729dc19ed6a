"""`gpupool devices` and `gpupool events`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gpupool.cli.common import JsonOpt, TokenOpt, UrlOpt, make_client
from gpupool.cli.output import clock, console, print_json
from gpupool.model import format_size


def devices(
    node: Annotated[str | None, typer.Option("--node", help="only this node's devices")] = None,
    model: Annotated[str | None, typer.Option("--model", help="model pattern, e.g. 'H100*'")] = None,
    free: Annotated[bool, typer.Option("--free", help="only devices with nothing bound")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the devices of the pool with what is allocated on each (your claims only, as a tenant)."""
    with make_client(url, token) as client:
        items = client.devices(node=node, model=model, free=True if free else None)
    if as_json:
        print_json(items)
        return
    table = Table(title=f"{len(items)} devices", title_justify="left")
    for column in ("NODE", "IDX", "MODEL", "MEMORY ALLOC/TOTAL", "COMPUTE", "UTIL", "CLAIMS", "UUID"):
        table.add_column(column)
    for d in items:
        util = "-" if d.utilization_percent is None else f"{d.utilization_percent:.0f}%"
        table.add_row(
            d.node,
            str(d.index),
            d.model,
            f"{format_size(d.memory_allocated_bytes) if d.memory_allocated_bytes else '0'}"
            f" / {format_size(d.memory_total_bytes)}",
            f"{d.compute_allocated_percent}%",
            util,
            str(len(d.claims)),
            d.uuid,
        )
    console.print(table)


def events(
    claim: Annotated[str | None, typer.Option("--claim", help="only this claim's events")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 50,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the audit trail, newest last."""
    with make_client(url, token) as client:
        items = client.events(claim_id=claim, limit=limit)
    if as_json:
        print_json(items)
        return
    table = Table(title="events", title_justify="left")
    for column in ("ID", "TIME", "ACTOR", "ACTION", "CLAIM", "DETAILS"):
        table.add_column(column)
    for e in items:
        details = ", ".join(f"{k}={v}" for k, v in e.details.items() if v is not None)
        table.add_row(str(e.id), clock(e.timestamp), e.actor, e.action, e.claim_id or "-", details)
    console.print(table)
