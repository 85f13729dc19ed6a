"""Process facts from Linux /proc (liveness, start time against pid reuse, descendants), and the
hook that ties a child's life to its launcher."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

PROC = Path("/proc")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces), or None."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """When the process started, in clock ticks since boot; None if it does not exist."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def started_at(pid: int) -> float | None:
    """When the process started, epoch seconds (10 ms resolution); None if it does not exist."""
    ticks = start_ticks(pid)
    if ticks is None:
        return None
    return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")


def _boot_time() -> float:
    for line in (PROC / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def ancestors(pid: int) -> set[int]:
    """`pid` and every process above it up to init (for "never signal the server" checks)."""
    found = {pid}
    current = pid
    for _ in range(256):
        fields = _stat_fields(current)
        if fields is None or int(fields[1]) <= 0:
            break
        current = int(fields[1])
        found.add(current)
    return found


def command_name(pid: int) -> str:
    """The process's command name (/proc/PID/comm), '' when gone."""
    try:
        return (PROC / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def is_alive(pid: int, expected_start_ticks: int | None = None) -> bool:
    """True if `pid` runs (not a zombie) and, when given, started at `expected_start_ticks`."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return expected_start_ticks is None or int(fields[19]) == expected_start_ticks


def parent_map() -> dict[int, int]:
    """pid -> parent pid for every process visible now."""
    parents: dict[int, int] = {}
    for entry in os.scandir(PROC):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            parents[int(entry.name)] = int(fields[1])
    return parents


def owners(roots: Iterable[int], parents: dict[int, int] | None = None) -> dict[int, int]:
    """Every live process in the trees under `roots`, mapped to its root pid."""
    parents = parent_map() if parents is None else parents
    root_set = set(roots)
    owned: dict[int, int] = {}
    for pid in parents:
        seen = pid
        for _ in range(64):  # a deep tree is fine; a cycle (pid reuse race) must not hang us
            if seen in root_set:
                owned[pid] = seen
                break
            parent = parents.get(seen)
            if parent is None or parent <= 1:
                break
            seen = parent
    return owned


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """Runs in the child before exec: SIGTERM it when the launching process dies (Linux)."""
    prctl: Any = None
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(None, use_errno=True).prctl

    def setup() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
            if os.getppid() != parent_pid:
                os._exit(143)

    return setup
