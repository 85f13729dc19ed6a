"""The memory watchdog: a claim whose processes together use more of a device's memory than the
claim holds there (by the driver's per-process accounting, summed) has those processes stopped:
SIGTERM, then SIGKILL after a grace period. Only the claim's own (proven) processes are touched,
so N processes of one claim cannot use N times its quota.

It backs the hardware limits where the driver does not enforce one (time-slicing, or MPS without
a pinned memory limit), so a quota holds whatever the isolation backend.
"""

from __future__ import annotations

import enum
import os
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from gpupool.model import DeviceTelemetry


class WatchdogMode(enum.StrEnum):
    KILL = "kill"  # SIGTERM, then SIGKILL after the grace period
    WARN = "warn"  # an event only
    OFF = "off"


@dataclass(frozen=True)
class Overuse:
    """A claim's processes on one device using, together, more memory than the claim holds there.

    `pids` are ordered by memory used, largest first; `used_memory_bytes` is their sum.
    """

    claim_id: str
    device_uuid: str
    pids: tuple[int, ...]
    used_memory_bytes: int
    limit_bytes: int

    @property
    def pid(self) -> int:
        """The largest user of the device among the claim's processes."""
        return self.pids[0]


@dataclass(frozen=True)
class WatchdogAction:
    action: str  # "over_quota" (warn), "terminate" (SIGTERM) or "kill" (SIGKILL)
    overuse: Overuse


def find_overuse(
    samples: Iterable[DeviceTelemetry],
    owner_of_pid: Mapping[int, str],
    limits_bytes: Mapping[tuple[str, str], int],
) -> list[Overuse]:
    """Claims over quota per device: `owner_of_pid` maps pid -> claim id, `limits_bytes`
    (claim, device) -> bytes. Processes gpupool cannot tie to a claim are not judged here."""
    found: list[Overuse] = []
    for sample in samples:
        used: dict[str, list[tuple[int, int]]] = {}
        for process in sample.processes:
            claim_id = owner_of_pid.get(process.pid)
            if claim_id is not None:
                used.setdefault(claim_id, []).append((process.used_memory_bytes, process.pid))
        for claim_id, processes in used.items():
            # Running on a device its claim does not hold: every byte there is over quota.
            limit = limits_bytes.get((claim_id, sample.uuid), 0)
            total = sum(memory for memory, _pid in processes)
            if total > limit:
                pids = tuple(pid for _memory, pid in sorted(processes, key=lambda item: (-item[0], item[1])))
                found.append(Overuse(claim_id, sample.uuid, pids, total, limit))
    return found


class Watchdog:
    """Acts on overuse according to its mode; remembers whom it warned and when it sent SIGTERM
    (per claim and device: the offence is the claim's, every process of it is stopped)."""

    def __init__(
        self,
        mode: WatchdogMode,
        grace_s: float = 10.0,
        send_signal: Callable[[int, int], None] = os.kill,
    ) -> None:
        self.mode = mode
        self.grace_s = grace_s
        self._send_signal = send_signal
        self._terminated_at: dict[tuple[str, str], float] = {}
        self._warned: set[tuple[str, str]] = set()

    def enforce(self, overuses: Iterable[Overuse], now: float) -> list[WatchdogAction]:
        """Act on this sample's overuse; returns what was done (for events)."""
        if self.mode == WatchdogMode.OFF:
            return []
        actions: list[WatchdogAction] = []
        current = list(overuses)
        for overuse in current:
            key = (overuse.claim_id, overuse.device_uuid)
            if self.mode == WatchdogMode.WARN:
                if key not in self._warned:
                    self._warned.add(key)
                    actions.append(WatchdogAction("over_quota", overuse))
                continue
            sent = self._terminated_at.get(key)
            if sent is None:
                if self._signal_all(overuse.pids, signal.SIGTERM):
                    self._terminated_at[key] = now
                    actions.append(WatchdogAction("terminate", overuse))
            elif now - sent >= self.grace_s and self._signal_all(overuse.pids, signal.SIGKILL):
                actions.append(WatchdogAction("kill", overuse))
        over = {(o.claim_id, o.device_uuid) for o in current}
        # Forget offences that ended (back under quota, or the processes are gone), so a new
        # offence starts afresh.
        self._terminated_at = {key: at for key, at in self._terminated_at.items() if key in over}
        self._warned &= over
        return actions

    def _signal_all(self, pids: Iterable[int], signum: int) -> bool:
        """Signal each pid; True if any was still there."""
        reached = False
        for pid in pids:
            try:
                self._send_signal(pid, signum)
            except ProcessLookupError:
                continue
            reached = True
        return reached
