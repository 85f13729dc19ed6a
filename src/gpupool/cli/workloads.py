"""`gpupool logs ID`, `gpupool stop ID` and `gpupool idle-timeout TENANT [SECONDS]`."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from gpupool.cli.common import JsonOpt, TokenOpt, UrlOpt, make_client
from gpupool.cli.output import console, fail, print_json

FOLLOW_POLL_S = 0.3


def logs(
    claim_id: Annotated[str, typer.Argument(help="claim id of a detached workload")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until it ends")] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Print the output of a workload started with `gpupool run --detach`."""
    offset = 0
    with make_client(url, token) as client:
        while True:
            chunk = client.workload_logs(claim_id, offset)
            sys.stdout.write(chunk.data)
            sys.stdout.flush()
            offset = chunk.next_offset
            if chunk.done or (not follow and not chunk.data):
                break
            if not chunk.data:
                time.sleep(FOLLOW_POLL_S)


def stop(
    claim_id: Annotated[str, typer.Argument(help="claim id of a workload")],
    timeout: Annotated[float, typer.Option("--timeout", min=0, help="seconds to wait for it to end")] = 60.0,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop a workload (SIGTERM, SIGKILL after the server's grace period); its claim is released."""
    with make_client(url, token) as client:
        workload = client.stop_workload(claim_id)
        deadline = time.monotonic() + timeout
        while workload.state in ("starting", "running") and time.monotonic() < deadline:
            time.sleep(FOLLOW_POLL_S)
            workload = client.workload(workload.claim_id)
    if as_json:
        print_json(workload)
        return
    if workload.state in ("starting", "running"):
        fail(f"workload {workload.claim_id} still runs after {timeout:g}s")
    console.print(
        f"{workload.claim_id} {workload.state}" + (f": {workload.reason}" if workload.reason else "")
    )


def idle_timeout(
    tenant: Annotated[str, typer.Argument(help="tenant name")],
    seconds: Annotated[
        str | None, typer.Argument(help="seconds; 0 never reclaims; 'default' uses the server's")
    ] = None,
    url: UrlOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show or set (admin) a tenant's idle reclaim timeout."""
    with make_client(url, token) as client:
        if seconds is None:
            result = client.idle_timeout(tenant)
        else:
            value: float | None = None
            if seconds != "default":
                try:
                    value = float(seconds)
                except ValueError:
                    fail(f"seconds: expected a number or 'default', got {seconds!r}")
            result = client.set_idle_timeout(tenant, value)
    if as_json:
        print_json(result)
        return
    own = "server default" if result.seconds is None else f"{result.seconds:g}s"
    effective = "never" if result.effective_s is None else f"{result.effective_s:g}s"
    console.print(f"{result.tenant}: idle timeout {own} (effective: {effective})")
