"""Simulated GPU usage declared by a workload, so that simulated telemetry follows real processes.

On the simulated backend the agent gives every workload GPUPOOL_SIM_USAGE_FILE, a path under its
state dir. The workload may write JSON there at any time:

    {"memory_bytes": 12884901888, "utilization_percent": 80}     # memory may also be "12GiB"

and the agent reports that usage for the workload's pid (or "pid" if given) on each device of its
claim. Nothing else is faked: the process, its environment and its lifetime are real.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gpupool.errors import GpupoolError
from gpupool.model import parse_size

USAGE_ENV = "GPUPOOL_SIM_USAGE_FILE"


@dataclass(frozen=True)
class DeclaredUsage:
    pid: int | None
    memory_bytes: int
    utilization_percent: float


def usage_path(state_dir: Path, claim_id: str) -> Path:
    return state_dir / "usage" / f"{claim_id}.json"


def read_usage(path: Path) -> DeclaredUsage | None:
    """The usage a workload declared, or None when there is no (complete, valid) file yet."""
    try:
        raw = json.loads(path.read_text())
        memory_raw = raw.get("memory_bytes", 0)
        memory = 0 if memory_raw in (0, "0") else parse_size(memory_raw, "memory_bytes")
        utilization = max(0.0, min(100.0, float(raw.get("utilization_percent", 0.0))))
        pid = raw.get("pid")
    except (OSError, ValueError, TypeError, AttributeError, GpupoolError):
        return None
    return DeclaredUsage(
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
        memory_bytes=memory,
        utilization_percent=utilization,
    )
