"""Simulated GPU usage declared by a workload, so that simulated telemetry follows real processes.

On the simulated backend the agent gives every workload GPUPOOL_SIM_USAGE_FILE, a path in a
directory of its claim (owned by the user the workload runs as). The workload may write JSON there
at any time, or one file per process (`<pid>.json`) in the same directory:

    {"memory_bytes": 12884901888, "utilization_percent": 80, "pid": 4242}   # memory may be "12GiB"

and the agent reports that usage for that pid (default: the workload's own) on each device of its
claim, once the pid is proven to be the claim's (see `trust.ClaimProcesses`); an unproven pid
shows as a process that belongs to no claim. Nothing else is faked: the process, its environment
and its lifetime are real.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from gpupool.errors import GpupoolError
from gpupool.model import parse_size

USAGE_ENV = "GPUPOOL_SIM_USAGE_FILE"
USAGE_FILE = "usage.json"
MAX_FILES = 64  # per claim: a tenant cannot make the agent read without bound
MAX_FILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class DeclaredUsage:
    pid: int | None
    memory_bytes: int
    utilization_percent: float


def usage_dir(state_dir: Path, claim_id: str) -> Path:
    return state_dir / "usage" / claim_id


def usage_path(state_dir: Path, claim_id: str) -> Path:
    return usage_dir(state_dir, claim_id) / USAGE_FILE


def prepare_usage_dir(state_dir: Path, claim_id: str, owner: tuple[int, int] | None) -> Path:
    """The claim's usage directory, 0700 and owned by `owner` (uid, gid) when given."""
    path = usage_dir(state_dir, claim_id)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if owner is not None:
        os.chown(path, *owner)
    return path


def read_claim_usage(state_dir: Path, claim_id: str) -> list[DeclaredUsage]:
    """Every usage a claim's processes declared (complete, valid files only)."""
    directory = usage_dir(state_dir, claim_id)
    try:
        names = sorted(name for name in os.listdir(directory) if name.endswith(".json"))[:MAX_FILES]
    except OSError:
        return []
    found = [read_usage(directory / name) for name in names]
    return [usage for usage in found if usage is not None]


def read_usage(path: Path) -> DeclaredUsage | None:
    """The usage a workload declared, or None when there is no (complete, valid) file yet.

    The file lives in a directory the tenant owns: it is opened without following links or
    blocking on a FIFO, and read only when it is a small regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            return None
        raw = json.loads(os.read(fd, MAX_FILE_BYTES))
        memory_raw = raw.get("memory_bytes", 0)
        memory = 0 if memory_raw in (0, "0") else parse_size(memory_raw, "memory_bytes")
        utilization = max(0.0, min(100.0, float(raw.get("utilization_percent", 0.0))))
        pid = raw.get("pid")
    except (OSError, ValueError, TypeError, AttributeError, GpupoolError):
        return None
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return DeclaredUsage(
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None,
        memory_bytes=memory,
        utilization_percent=utilization,
    )
