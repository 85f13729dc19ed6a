"""`gpupool devices` and `gpupool events`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich import box
from rich.table import Table

from gpupool.cli.common import JsonOpt, TokenOpt, UrlOpt, make_client
from gpupool.cli.output import console, print_json, short_clock
from gpupool.model import format_size

WIDE_COLUMNS = 110
"""From this terminal width on, `devices` shows the UUID column (UUIDs are never cut)."""


def devices(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List every device of the pool with what is allocated on it."""
    with make_client(url, token) as client:
        items = client.devices()
    if as_json:
        print_json(items)
        return
    # UUIDs are what people copy: never cut them. A terminal too narrow for them gets a hint instead.
    wide = console.width >= WIDE_COLUMNS
    caption = None if wide else f"device UUIDs: `gpupool devices --json`, or {WIDE_COLUMNS}+ columns"
    table = Table(title=f"{len(items)} devices", title_justify="left", box=box.SIMPLE_HEAD, caption=caption)
    table.add_column("DEVICE", no_wrap=True)
    for column in ("MODEL", "MEMORY", "COMPUTE", "UTIL", "CLAIMS"):
        table.add_column(column)
    if wide:
        table.add_column("UUID", no_wrap=True, min_width=max((len(d.uuid) for d in items), default=4))
    for d in items:
        util = "-" if d.utilization_percent is None else f"{d.utilization_percent:.0f}%"
        table.add_row(
            f"{d.node}/{d.index}",
            d.model,
            f"{format_size(d.memory_allocated_bytes) if d.memory_allocated_bytes else '0'}"
            f"/{format_size(d.memory_total_bytes)}",
            f"{d.compute_allocated_percent}%",
            util,
            str(len(d.claims)),
            *([d.uuid] * wide),
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
    table = Table(title="events", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("ID", "TIME", "ACTOR", "ACTION"):
        table.add_column(column, no_wrap=column != "ACTOR", overflow="fold")
    table.add_column("CLAIM", no_wrap=True, min_width=max((len(e.claim_id or "") for e in items), default=5))
    table.add_column("DETAILS", overflow="fold")
    for e in items:
        details = ", ".join(f"{k}={_detail(v)}" for k, v in e.details.items() if v is not None)
        table.add_row(str(e.id), short_clock(e.timestamp), e.actor, e.action, e.claim_id or "-", details)
    console.print(table)


def _detail(value: object) -> str:
    """A detail value as people read it: lists space-separated (a command, device UUIDs)."""
    if isinstance(value, list | tuple):
        return " ".join(str(item) for item in value)
    return str(value)
