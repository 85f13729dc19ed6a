"""`gpupool run -- CMD`: claim vGPUs, run CMD with their environment, release on every exit path.

Exit paths and what releases the claim: CMD exits or crashes (this process releases, exits with
CMD's code, 128+N for a signal N); Ctrl-C or SIGTERM (forwarded to CMD, then as before); this
process is killed -9 (CMD gets SIGTERM from the kernel via PR_SET_PDEATHSIG, the heartbeats stop
and the server reclaims the claim when its lease expires). gpupool's own errors exit with 2,
a CMD that cannot be started with 127 (not found) or 126 (not executable), like a shell.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Annotated

import typer

from gpupool.cli.common import TokenOpt, UrlOpt, make_client
from gpupool.cli.lease import LeaseKeeper
from gpupool.cli.output import fail
from gpupool.cli.remote import remote_node, run_remote
from gpupool.cli.waiting import bound_line, queue_progress
from gpupool.client import Client
from gpupool.errors import GpupoolError
from gpupool.isolation.procfs import die_with_parent
from gpupool.model.wire import ClaimPublic
from gpupool.model.workload_wire import LeasePublic

LEASE_TTL_S = 30.0
"""Lease taken with the claim (same transaction); the first heartbeat sets the server's TTL."""
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(Exception):
    """A signal arrived before CMD started: release and exit 128+N."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def run(
    command: Annotated[list[str], typer.Argument(help="the command and its arguments (after --)")],
    gpus: Annotated[int, typer.Option("--gpus", "-n", min=1, help="number of vGPUs (one node)")] = 1,
    memory: Annotated[str | None, typer.Option("--memory", "-m", help="memory per vGPU, e.g. 10GiB")] = None,
    compute: Annotated[str | None, typer.Option("--compute", "-c", help="compute share per vGPU, %")] = None,
    model: Annotated[str | None, typer.Option("--model", help="device model pattern, e.g. 'H100*'")] = None,
    mig: Annotated[
        str | None, typer.Option("--mig", help="a MIG instance of this profile, e.g. 1g.10gb")
    ] = None,
    priority: Annotated[int, typer.Option("--priority", help="higher binds first")] = 0,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="queue until capacity frees")] = True,
    detach: Annotated[
        bool, typer.Option("--detach", "-d", help="hand CMD to the node agent and print the claim id")
    ] = False,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Run CMD on a vGPU: claim, wait in the queue, start CMD with the vGPU environment, release at exit."""
    compute_value: int | str | None = int(compute) if compute and compute.isdigit() else compute
    code = 0
    handed_over = False  # a detached CMD's claim belongs to the node agent
    with make_client(url, token) as client:
        previous = {sig: signal.signal(sig, _raise_interrupted) for sig in FORWARDED}
        claim = client.claim(
            gpus=gpus, memory=memory, compute=compute_value, model=model, priority=priority,
            lease_ttl_s=LEASE_TTL_S, mig=mig,
        )  # fmt: skip
        keeper: LeaseKeeper | None = None
        child: dict[str, subprocess.Popen[bytes]] = {}
        try:
            keeper = LeaseKeeper(
                client.url, client.token, claim.id, _ended_notice(child), _preempted_notice(claim.id, child)
            ).start()
            claim = _wait_bound(client, claim, wait)
            if detach:
                _detach(client, claim, command)
                handed_over = True
                return
            node = remote_node(client, claim)  # cluster mode: CMD runs on its claim's node
            if node:
                code = run_remote(client, claim, command, node)
            else:
                code = _run_attached(client, claim, command, child)
            _say_if_ended_by_server(client, claim.id)
        except Interrupted as exc:
            code = 128 + exc.signum
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if keeper is not None:
                keeper.stop()
            if not handed_over:
                _release_quietly(client, claim.id)
    raise typer.Exit(code)


def _raise_interrupted(signum: int, _frame: FrameType | None) -> None:
    raise Interrupted(signum)


def _wait_bound(client: Client, claim: ClaimPublic, wait: bool) -> ClaimPublic:
    """Poll until the claim is bound, showing queue position and reason; fail if it ends."""
    if claim.state == "pending" and not wait:
        fail(f"claim {claim.id} cannot bind now: {claim.reason} (released; drop --no-wait to queue)")
    with queue_progress() as show:
        claim = client.wait_bound(claim, on_wait=show)
    sys.stderr.write(f"gpupool: {bound_line(claim)}\n")
    return claim


def _detach(client: Client, claim: ClaimPublic, command: list[str]) -> None:
    # The caller's variables go along (minus gpupool's own: tokens never travel); the server drops
    # what a detached workload must not get and runs it as the tenant's OS user.
    env = {key: value for key, value in os.environ.items() if not key.startswith("GPUPOOL_")}
    workload = client.create_workload(claim.id, command, detach=True, cwd=os.getcwd(), env=env)
    sys.stderr.write(
        f"gpupool: started pid {workload.pid} for claim {claim.id}; "
        f"`gpupool logs {claim.id}` to follow, `gpupool stop {claim.id}` to stop\n"
    )
    sys.stdout.write(claim.id + "\n")


def _run_attached(
    client: Client, claim: ClaimPublic, command: list[str], child: dict[str, subprocess.Popen[bytes]]
) -> int:
    """Start CMD with the vGPU environment, forward signals to it, return its exit status."""
    workload = client.create_workload(claim.id, command)
    env = {**workload.hints, **os.environ, **workload.env}
    try:
        proc = subprocess.Popen(command, env=env, preexec_fn=die_with_parent(os.getpid()))
    except OSError as exc:
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        with contextlib.suppress(GpupoolError):
            client.update_workload(claim.id, exit_code=code)
        sys.stderr.write(f"gpupool: error: cannot start {command[0]!r}: {exc.strerror}\n")
        return code
    child["proc"] = proc
    for sig in FORWARDED:
        signal.signal(sig, _forwarder(proc))
    with contextlib.suppress(GpupoolError):
        client.update_workload(claim.id, pid=proc.pid)
    status = proc.wait()
    code = 128 - status if status < 0 else status
    with contextlib.suppress(GpupoolError):
        client.update_workload(claim.id, exit_code=code)
    return code


def _forwarder(proc: subprocess.Popen[bytes]) -> Callable[[int, FrameType | None], None]:
    def forward(signum: int, _frame: FrameType | None) -> None:
        # A Ctrl-C typed at the terminal already reached CMD (same foreground process group).
        if signum == signal.SIGINT and _terminal_foreground():
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signum)

    return forward


def _terminal_foreground() -> bool:
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def _ended_notice(child: dict[str, subprocess.Popen[bytes]]) -> Callable[[LeasePublic], None]:
    """When the server ends the claim under us: say why and SIGTERM CMD (it no longer has a GPU)."""

    def notice(_lease: LeasePublic) -> None:
        proc = child.get("proc")
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)

    return notice


def _preempted_notice(
    claim_id: str, child: dict[str, subprocess.Popen[bytes]]
) -> Callable[[float, str], None]:
    """When the claim is preempted: say why, SIGTERM CMD now and SIGKILL it at the deadline. CMD's
    exit then releases the claim as usual, which the server records as `preempted`."""

    def notice(deadline: float, reason: str) -> None:
        until = time.strftime("%H:%M:%S", time.localtime(deadline))
        sys.stderr.write(
            f"gpupool: claim {claim_id} is preempted ({reason}); stopping CMD (SIGKILL at {until})\n"
        )
        proc = child.get("proc")
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

        def kill() -> None:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()

        timer = threading.Timer(max(0.0, deadline - time.time()), kill)
        timer.daemon = True
        timer.start()

    return notice


def _say_if_ended_by_server(client: Client, claim_id: str) -> None:
    with contextlib.suppress(GpupoolError):
        current = client.get_claim(claim_id)
        if current.state != "bound":
            sys.stderr.write(
                f"gpupool: claim {claim_id} was {current.state} by the server: {current.reason}\n"
            )


def _release_quietly(client: Client, claim_id: str) -> None:
    try:
        client.release(claim_id)
    except GpupoolError as exc:
        sys.stderr.write(
            f"gpupool: warning: could not release {claim_id} ({exc.message}); its lease will expire\n"
        )
