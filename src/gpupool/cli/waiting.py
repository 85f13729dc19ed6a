"""Waiting for a claim to bind, as people see it: a spinner with the queue position and reason on a
terminal, one stderr line per change otherwise (logs stay readable)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.status import Status

from gpupool.cli.output import err_console
from gpupool.model import describe_size
from gpupool.model.wire import ClaimPublic


@contextmanager
def queue_progress() -> Iterator[Callable[[ClaimPublic], None]]:
    """A callback for `Client.claim(on_wait=...)` / `Client.wait_bound`; the spinner stops on exit."""
    status: Status | None = None

    def show(claim: ClaimPublic) -> None:
        nonlocal status
        line = f"claim {claim.id} pending #{claim.queue_position or '?'}: {claim.reason}"
        if err_console.is_terminal:
            if status is None:
                status = err_console.status(line)
                status.start()
            status.update(line)
        else:
            sys.stderr.write(f"gpupool: {line}\n")
            sys.stderr.flush()

    try:
        yield show
    finally:
        if status is not None:
            status.stop()


def bound_line(claim: ClaimPublic) -> str:
    """`claim c-... bound: node-0/1 10GiB (10.7GB) 25%`, for stderr once a claim is bound."""
    where = ", ".join(
        f"{b.node}/{b.device_index} {describe_size(b.memory_bytes)} {b.compute_percent}%"
        for b in claim.bindings
    )
    return f"claim {claim.id} bound: {where}"
