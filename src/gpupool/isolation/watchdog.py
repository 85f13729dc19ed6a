"""The memory watchdog: a process over its claim's device memory (by the driver's per-process
accounting) gets SIGTERM, then SIGKILL after a grace period. Only that process is touched.

It backs the hardware limits where the driver does not enforce one (time-slicing, or MPS without
a pinned memory limit), so a quota holds whatever the isolation backend.
"""

from __future__ import annotations

import enum
import os
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from gpupool.isolation import procfs
from gpupool.model import DeviceTelemetry


class WatchdogMode(enum.StrEnum):
    KILL = "kill"  # SIGTERM, then SIGKILL after the grace period
    WARN = "warn"  # an event only
    OFF = "off"


@dataclass(frozen=True)
class Overuse:
    """One process of a claim using more memory on a device than the claim holds there."""

    claim_id: str
    pid: int
    device_uuid: str
    used_memory_bytes: int
    limit_bytes: int


@dataclass(frozen=True)
class WatchdogAction:
    action: str  # "over_quota" (warn), "terminate" (SIGTERM) or "kill" (SIGKILL)
    overuse: Overuse


def find_overuse(
    samples: Iterable[DeviceTelemetry],
    owner_of_pid: Mapping[int, str],
    limits_bytes: Mapping[tuple[str, str], int],
) -> list[Overuse]:
    """Processes over quota: `owner_of_pid` maps pid -> claim id, `limits_bytes` (claim, device) -> bytes.

    Processes gpupool did not start are not ours to judge and are skipped.
    """
    found: list[Overuse] = []
    for sample in samples:
        for process in sample.processes:
            claim_id = owner_of_pid.get(process.pid)
            if claim_id is None:
                continue
            limit = limits_bytes.get((claim_id, sample.uuid))
            if limit is None:
                # Running on a device its claim does not hold: every byte there is over quota.
                limit = 0
            if process.used_memory_bytes > limit:
                found.append(Overuse(claim_id, process.pid, sample.uuid, process.used_memory_bytes, limit))
    return found


class Watchdog:
    """Acts on overuse according to its mode; remembers whom it warned and when it sent SIGTERM."""

    def __init__(
        self,
        mode: WatchdogMode,
        grace_s: float = 10.0,
        send_signal: Callable[[int, int], None] = os.kill,
    ) -> None:
        self.mode = mode
        self.grace_s = grace_s
        self._send_signal = send_signal
        self._terminated_at: dict[int, float] = {}
        self._warned: set[tuple[str, int]] = set()

    def enforce(self, overuses: Iterable[Overuse], now: float) -> list[WatchdogAction]:
        """Act on this sample's overuse; returns what was done (for events)."""
        if self.mode == WatchdogMode.OFF:
            return []
        actions: list[WatchdogAction] = []
        current = list(overuses)
        for overuse in current:
            if self.mode == WatchdogMode.WARN:
                key = (overuse.claim_id, overuse.pid)
                if key not in self._warned:
                    self._warned.add(key)
                    actions.append(WatchdogAction("over_quota", overuse))
                continue
            sent = self._terminated_at.get(overuse.pid)
            if sent is None:
                if self._signal(overuse.pid, signal.SIGTERM):
                    self._terminated_at[overuse.pid] = now
                    actions.append(WatchdogAction("terminate", overuse))
            elif now - sent >= self.grace_s and self._signal(overuse.pid, signal.SIGKILL):
                actions.append(WatchdogAction("kill", overuse))
        over_pids = {o.pid for o in current}
        # Forget processes that came back under quota or ended, so a new offence starts afresh.
        for pid in [p for p in self._terminated_at if p not in over_pids and not procfs.is_alive(p)]:
            del self._terminated_at[pid]
        self._warned = {key for key in self._warned if key[1] in over_pids}
        return actions

    def _signal(self, pid: int, signum: int) -> bool:
        try:
            self._send_signal(pid, signum)
        except ProcessLookupError:
            return False
        return True
