"""`gpupool claim`, `release` and `ps`."""

from __future__ import annotations

import datetime
import shlex
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from gpupool.cli.common import JsonOpt, TokenOpt, UrlOpt, make_client
from gpupool.cli.output import ago, console, print_json
from gpupool.cli.waiting import queue_progress
from gpupool.model import describe_size, format_size
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
    wait: Annotated[
        bool, typer.Option("--wait", "-w", help="return only once the claim is bound (queue until then)")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option("--timeout", min=0, help="with --wait: give up (and release) after this many seconds"),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="print only the claim id")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Claim vGPUs: whole GPUs by default, or a fraction with --memory and/or --compute.

    Memory takes a unit: 10GiB (binary, 1GiB = 1024^3 bytes) or 10GB (decimal, 10^9). A claim no
    node of the pool could ever hold is refused at once (exit 2); one that does not fit now waits
    in the queue: `--wait` returns when it is bound, `--timeout S` gives up (and releases) after S s.
    """
    labels = _parse_labels(label or [])
    compute_value: int | str | None = int(compute) if compute and compute.isdigit() else compute
    with make_client(url, token) as client, queue_progress() as show:
        result = client.claim(
            gpus=gpus,
            memory=memory,
            compute=compute_value,
            model=model,
            priority=priority,
            preemptible=preemptible,
            labels=labels,
            mig=mig,
            wait=wait or timeout is not None,
            timeout_s=timeout,
            on_wait=None if quiet else show,  # stderr: --json output stays clean
        )
        launch = client.launch_env(result.id) if env and not as_json and result.state == "bound" else None
    if as_json:
        print_json(result)
    elif quiet:
        console.print(result.id, highlight=False)
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
    table = Table(title="claims", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    # IDs are what people copy: never cut them. On a narrow terminal the reasons go under the table.
    reasons = any(item.reason for item in claims)
    inline_reasons = reasons and console.width >= WIDE_COLUMNS
    table.add_column("ID", no_wrap=True, min_width=max((len(item.id) for item in claims), default=2))
    for column in ("TENANT", "STATE", "GPUS", "MEMORY", "COMPUTE"):
        table.add_column(column, no_wrap=column != "TENANT", overflow="fold")
    table.add_column("DEVICES", overflow="fold")
    table.add_column("AGE", no_wrap=True)
    if inline_reasons:
        table.add_column("REASON")
    for item in claims:
        memory, compute = _per_vgpu(item)
        row = [item.id, item.tenant, _state_text(item), str(item.gpus), memory, compute]
        row += [_devices_text(item), ago(item.created_at), *([item.reason] * inline_reasons)]
        table.add_row(*row)
    console.print(table)
    if reasons and not inline_reasons:
        for item in claims:
            if item.reason:
                console.print(f"{item.id}: {item.reason}", highlight=False)


def _devices_text(item: ClaimPublic) -> str:
    """`node-1/0,1,2,3`: each node once, then its device indexes."""
    indexes: dict[str, list[str]] = {}
    for binding in item.bindings:
        indexes.setdefault(binding.node, []).append(str(binding.device_index))
    return " ".join(f"{node}/{','.join(numbers)}" for node, numbers in indexes.items()) or "-"


def _per_vgpu(item: ClaimPublic) -> tuple[str, str]:
    """(memory, compute) per vGPU as bound; before binding, what was asked (`auto`: in proportion
    to the device it lands on)."""
    if item.memory_bytes is None and item.compute_percent is None:
        return "whole", "whole"
    if item.bindings:
        first = item.bindings[0]
        return format_size(first.memory_bytes), f"{first.compute_percent}%"
    memory = format_size(item.memory_bytes) if item.memory_bytes else "auto"
    return memory, f"{item.compute_percent}%" if item.compute_percent else "auto"


WIDE_COLUMNS = 120
"""From this terminal width on, `ps` shows each claim's reason in a column; below it, under the table."""


def _state_text(item: ClaimPublic) -> str:
    colours = {"bound": "green", "pending": "yellow", "released": "dim", "lost": "red", "failed": "red"}
    text = item.state if item.queue_position is None else f"{item.state} #{item.queue_position}"
    if item.state == "bound" and item.preempt_deadline is not None:
        stops = datetime.datetime.fromtimestamp(item.preempt_deadline).strftime("%H:%M:%S")
        return f"[magenta]preempting (stops by {stops})[/]"
    return f"[{colours.get(item.state, 'white')}]{text}[/]"


def _print_claim(item: ClaimPublic) -> None:
    console.print(
        f"claim [bold]{item.id}[/] {_state_text(item)}" + (f": {item.reason}" if item.reason else ""),
        soft_wrap=True,
    )
    console.print(f"  asks for {_asks(item)}", highlight=False)
    for binding in item.bindings:
        console.print(
            f"  {binding.node}/{binding.device_index} {binding.device_uuid} "
            f"{describe_size(binding.memory_bytes)} {binding.compute_percent}%",
            highlight=False,
        )
    if item.env:
        console.print("  environment:")
        for key, value in item.env.items():
            console.print(f"    {key}={value}", highlight=False, soft_wrap=True)


def _asks(item: ClaimPublic) -> str:
    """What the claim asks for per vGPU, sizes both ways: `1 vGPU of 10GiB (10.7GB), 25% compute`."""
    count = f"{item.gpus} {'vGPU' if item.gpus == 1 else 'vGPUs'}"
    if item.memory_bytes is None and item.compute_percent is None:
        what = f"{item.gpus} whole {'GPU' if item.gpus == 1 else 'GPUs'}"
    else:
        parts = [describe_size(item.memory_bytes) if item.memory_bytes else "", ""]
        parts[1] = f"{item.compute_percent}% compute" if item.compute_percent else ""
        what = f"{count} of " + ", ".join(part for part in parts if part) + (" each" if item.gpus > 1 else "")
    return what + (f" on {item.model}" if item.model else "")


def _parse_labels(pairs: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--label")
        labels[key] = value
    return labels
