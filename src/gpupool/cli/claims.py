"""`gpupool claim`, `release` and `ps`."""

from __future__ import annotations

import datetime
import shlex
from typing import Annotated

import typer
from rich.table import Table

from gpupool.cli.common import JsonOpt, TokenOpt, UrlOpt, make_client
from gpupool.cli.output import ago, console, print_json
from gpupool.model import format_size
from gpupool.model.wire import ClaimPublic
from gpupool.model.workload_wire import LaunchEnvPublic


def claim(
    gpus: Annotated[int, typer.Option("--gpus", "-n", min=1, help="number of vGPUs (all on one node)")] = 1,
    memory: Annotated[str | None, typer.Option("--memory", "-m", help="memory per vGPU, e.g. 10GiB")] = None,
    compute: Annotated[
        str | None, typer.Option("--compute", "-c", help="compute share per vGPU, 1..100 (%)")
    ] = None,
    model: Annotated[str | None, typer.Option("--model", help="device model pattern, e.g. 'H100*'")] = None,
    mig: Annotated[
        str | None, typer.Option("--mig", help="a whole MIG instance of this profile, e.g. 1g.10gb")
    ] = None,
    priority: Annotated[int, typer.Option("--priority", help="higher binds first")] = 0,
    preemptible: Annotated[
        bool, typer.Option("--preemptible", help="may be evicted for in-quota work")
    ] = False,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="KEY=VALUE, repeatable")] = None,
    env: Annotated[
        bool, typer.Option("--env", help="print `export` lines for the launch environment")
    ] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Claim vGPUs: whole GPUs by default, or a fraction with --memory and/or --compute."""
    labels = _parse_labels(label or [])
    compute_value: int | str | None = int(compute) if compute and compute.isdigit() else compute
    with make_client(url, token) as client:
        result = client.claim(
            gpus=gpus,
            memory=memory,
            compute=compute_value,
            model=model,
            priority=priority,
            preemptible=preemptible,
            labels=labels,
            mig=mig,
        )
        launch = client.launch_env(result.id) if env and not as_json and result.state == "bound" else None
    if as_json:
        print_json(result)
    elif env:
        _print_exports(result, launch)
    else:
        _print_claim(result)


def _print_exports(result: ClaimPublic, launch: LaunchEnvPublic | None) -> None:
    """`export` lines for a shell: the isolation env, then framework hints that keep a value the
    user already set. A claim still pending prints a comment saying so (and nothing to export)."""
    if launch is None:
        console.print(
            f"# claim {result.id} is {result.state}: {result.reason}", highlight=False, soft_wrap=True
        )
        return
    console.print(f"# claim {result.id}", highlight=False)
    for key, value in launch.env.items():
        console.print(f"export {key}={shlex.quote(value)}", highlight=False, soft_wrap=True)
    for key, value in launch.hints.items():
        line = f'export {key}="${{{key}:-{value}}}"'
        if any(char in value for char in '"}$`\\'):  # not safe inside ${...}: set it plainly
            line = f"export {key}={shlex.quote(value)}"
        console.print(line, highlight=False, soft_wrap=True)


def release(
    claim_ids: Annotated[list[str], typer.Argument(help="claim id(s) to release")],
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Release claims at once; their capacity goes to the next waiting claim."""
    with make_client(url, token) as client:
        released = [client.release(claim_id) for claim_id in claim_ids]
    if as_json:
        print_json(released)
        return
    for item in released:
        console.print(f"{item.id} {item.state}")


def ps(
    all_states: Annotated[
        bool, typer.Option("--all", "-a", help="include released and ended claims")
    ] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List claims: bound and pending ones (all with --all)."""
    with make_client(url, token) as client:
        claims = client.claims(None if all_states else ["bound", "pending"])
    if as_json:
        print_json(claims)
        return
    table = Table(title="claims", title_justify="left")
    for column in ("ID", "TENANT", "STATE", "GPUS", "MEMORY", "COMPUTE", "DEVICES", "AGE", "REASON"):
        table.add_column(column)
    for item in claims:
        table.add_row(
            item.id,
            item.tenant,
            _state_text(item),
            str(item.gpus),
            format_size(item.memory_bytes) if item.memory_bytes else "whole",
            f"{item.compute_percent}%" if item.compute_percent else "whole",
            ", ".join(f"{b.node}/{b.device_index}" for b in item.bindings) or "-",
            ago(item.created_at),
            item.reason,
        )
    console.print(table)


def _state_text(item: ClaimPublic) -> str:
    colours = {"bound": "green", "pending": "yellow", "released": "dim", "lost": "red", "failed": "red"}
    text = item.state if item.queue_position is None else f"{item.state} #{item.queue_position}"
    if item.state == "bound" and item.preempt_deadline is not None:
        stops = datetime.datetime.fromtimestamp(item.preempt_deadline).strftime("%H:%M:%S")
        return f"[magenta]preempting (stops by {stops})[/]"
    return f"[{colours.get(item.state, 'white')}]{text}[/]"


def _print_claim(item: ClaimPublic) -> None:
    console.print(
        f"claim [bold]{item.id}[/] {_state_text(item)}" + (f": {item.reason}" if item.reason else "")
    )
    for binding in item.bindings:
        console.print(
            f"  {binding.node}/{binding.device_index} {binding.device_uuid} "
            f"{format_size(binding.memory_bytes)} {binding.compute_percent}%"
        )
    if item.env:
        console.print("  environment:")
        for key, value in item.env.items():
            console.print(f"    {key}={value}", highlight=False, soft_wrap=True)


def _parse_labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--label")
        labels[key] = value
    return labels
