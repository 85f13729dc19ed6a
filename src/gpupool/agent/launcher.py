"""The launcher contract: what starts a workload's process on a node other than the server's.

On one machine the agent's `Supervisor` spawns processes itself. In cluster mode the process must
start on the node that holds the claim's devices, so the agent hands it to that node's launcher
(the Ray agent actor implements this contract; a Kubernetes or Slurm adapter would too).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class LaunchOutput:
    """A chunk of a launched process's output (stdout and stderr merged) and whether it ended.

    `ended` is True only once the process exited and every byte up to `next_offset` was read;
    `exit_code` is the shell-style status (128+N for signal N), None while it runs.
    """

    data: bytes
    next_offset: int
    exit_code: int | None
    ended: bool


class Launcher(Protocol):
    """Starts, follows and signals workload processes on one node."""

    def start(self, claim_id: str, command: Sequence[str], cwd: str | None, env: Mapping[str, str]) -> int:
        """Start the claim's process; return its pid on that node. OSError when it cannot start."""
        ...

    def poll(self, claim_id: str, offset: int, max_bytes: int) -> LaunchOutput:
        """Output from byte `offset` (at most `max_bytes`) and the exit status so far."""
        ...

    def signal(self, claim_id: str, signum: int) -> bool:
        """Signal the claim's whole process group; False if it is not running."""
        ...
