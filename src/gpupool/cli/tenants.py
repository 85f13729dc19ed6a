"""`gpupool tenants list|create|set|quotas`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from gpupool.cli.common import JsonOpt, TokenOpt, UrlOpt, make_client
from gpupool.cli.output import clock, console, print_json
from gpupool.model import format_size
from gpupool.model.quota import QuotaPublic

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
    table.add_column("RUN AS")
    table.add_column("CREATED")
    for t in items:
        table.add_row(t.name, t.run_as or "-", clock(t.created_at))
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


@app.command("set")
def set_quota(
    name: Annotated[str, typer.Argument(help="tenant name, e.g. team-a")],
    guarantee: Annotated[
        str | None,
        typer.Option("--guarantee", help="never preempted: '2gpu', '160GiB', '2gpu,160GiB' or 'none'"),
    ] = None,
    limit: Annotated[
        str | None, typer.Option("--limit", help="hard cap: '4gpu', '320GiB', '4gpu,320GiB', 'none'")
    ] = None,
    run_as: Annotated[
        str | None,
        typer.Option("--run-as", help="OS user its detached workloads run as ('none' removes it)"),
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a tenant's quota (a guaranteed share and a limit, in GPUs and/or memory) and/or the OS
    user its detached workloads run as (admin)."""
    quota_given = guarantee is not None or limit is not None or run_as is None
    with make_client(url, token) as client:
        mapped = None
        if run_as is not None:
            mapped = client.set_run_as(name, None if run_as.lower() in ("none", "-") else run_as)
        quota = client.set_quota(name, guarantee=guarantee, limit=limit) if quota_given else None
    if as_json:
        shown = {"tenant": mapped, "quota": quota}
        print_json({key: value.model_dump(mode="json") for key, value in shown.items() if value is not None})
        return
    if mapped is not None:
        console.print(
            f"tenant [bold]{mapped.name}[/]: detached workloads run as {mapped.run_as or 'nobody (refused)'}"
        )
    if quota is not None:
        console.print(f"tenant [bold]{quota.tenant}[/]: {quota_text(quota)}")


@app.command("quotas")
def list_quotas(url: UrlOpt = None, token: TokenOpt = None, as_json: JsonOpt = False) -> None:
    """List tenants' quotas next to what they hold and wait for."""
    with make_client(url, token) as client:
        rows = client.overview().tenants
    if as_json:
        print_json(rows)
        return
    table = Table(title="quotas", title_justify="left")
    for column in ("TENANT", "GUARANTEE", "LIMIT", "ALLOCATED", "MEMORY", "BOUND", "PENDING"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name,
            _amount(row.guarantee_gpus, row.guarantee_memory_bytes),
            _amount(row.limit_gpus, row.limit_memory_bytes),
            f"{row.allocated_gpus:.2f} GPU",
            format_size(row.allocated_memory_bytes) if row.allocated_memory_bytes else "0",
            str(row.bound_claims),
            str(row.pending_claims),
        )
    console.print(table)


def quota_text(quota: QuotaPublic) -> str:
    return (
        f"guarantee {_amount(quota.guarantee_gpus, quota.guarantee_memory_bytes)}, "
        f"limit {_amount(quota.limit_gpus, quota.limit_memory_bytes)}"
    )


def _amount(gpus: float | None, memory_bytes: int | None) -> str:
    parts = [f"{gpus:g} GPU" if gpus is not None else "", format_size(memory_bytes) if memory_bytes else ""]
    return ", ".join(p for p in parts if p) or "-"
