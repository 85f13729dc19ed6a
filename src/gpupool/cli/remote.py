"""`gpupool run` in cluster mode: CMD runs on the node of its claim, its output streams back here.

The server's agent starts CMD through the agent actor of the bound node; this process follows
its log, exits with its exit code and releases the claim (the caller's `finally`). The lease
heartbeats go on meanwhile, so a `gpupool run` killed with -9 still frees the claim when its
lease expires, and the agent then stops CMD on its node.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from gpupool.cli.output import fail
from gpupool.client import Client
from gpupool.errors import GpupoolError, InvalidRequest, NotFound
from gpupool.model.wire import ClaimPublic

POLL_S = 0.2
EXIT_NOT_STARTED = 127


def remote_node(client: Client, claim: ClaimPublic) -> str | None:
    """The claim's node when workloads reach it through an agent (cluster mode), else None."""
    node = claim.bindings[0].node if claim.bindings else None
    try:
        listing = client.nodes()
    except NotFound:
        return None  # a server without /v1/nodes serves one machine
    return next((n.name for n in listing.items if n.name == node and n.launch == "remote"), None)


def run_remote(client: Client, claim: ClaimPublic, command: list[str], node: str) -> int:
    """Start CMD on `node`, copy its output to stdout until it ends; return its exit status."""
    try:
        client.create_workload(claim.id, command, detach=True, cwd=os.getcwd(), env=dict(os.environ))
    except InvalidRequest as exc:
        sys.stderr.write(f"gpupool: error: on node {node}: {exc.message}\n")
        return EXIT_NOT_STARTED
    offset = 0
    try:
        while True:
            chunk = client.workload_logs(claim.id, offset)
            if chunk.data:
                sys.stdout.write(chunk.data)
                sys.stdout.flush()
            offset = chunk.next_offset
            if chunk.done:
                break
            if not chunk.data:
                time.sleep(POLL_S)
    except BaseException:  # Ctrl-C, SIGTERM, lost server: stop CMD on its node, then go on exiting
        with contextlib.suppress(GpupoolError):
            client.stop_workload(claim.id)
        raise
    workload = client.workload(claim.id)
    current = client.get_claim(claim.id)
    if current.state == "lost":
        fail(f"claim {claim.id} is lost: {current.reason or f'node {node} is gone'}; CMD did not finish")
    return workload.exit_code if workload.exit_code is not None else 1
