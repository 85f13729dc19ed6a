"""The memory watchdog as a table: who is over quota, and what each mode does about it."""

from __future__ import annotations

import signal

import pytest

from gpupool.isolation import Watchdog, WatchdogMode, find_overuse
from gpupool.model import DeviceTelemetry, GiB, ProcessUsage

DEV = "GPU-a"
OTHER = "GPU-b"


def sample(*processes: tuple[int, int], uuid: str = DEV) -> DeviceTelemetry:
    return DeviceTelemetry(
        uuid=uuid,
        utilization_percent=0.0,
        memory_used_bytes=0,
        processes=tuple(ProcessUsage(pid, used) for pid, used in processes),
    )


@pytest.mark.parametrize(
    ("samples", "expected_pids"),
    [
        ([sample((10, 9 * GiB), (20, 5 * GiB))], []),
        ([sample((10, 11 * GiB), (20, 5 * GiB))], [10]),
        ([sample((10, 10 * GiB))], []),  # exactly at quota is fine
        ([sample((99, 70 * GiB))], []),  # not ours: never judged
        ([sample((20, 1), uuid=OTHER)], [20]),  # on a device its claim does not hold
    ],
    ids=["under", "one-over", "at-quota", "foreign", "wrong-device"],
)
def test_find_overuse(samples: list[DeviceTelemetry], expected_pids: list[int]) -> None:
    owners = {10: "c-a", 20: "c-b"}
    limits = {("c-a", DEV): 10 * GiB, ("c-b", DEV): 6 * GiB}
    assert [o.pid for o in find_overuse(samples, owners, limits)] == expected_pids


def test_kill_mode_terminates_then_kills_after_grace() -> None:
    sent: list[tuple[int, int]] = []
    dog = Watchdog(WatchdogMode.KILL, grace_s=2.0, send_signal=lambda pid, sig: sent.append((pid, sig)))
    over = find_overuse([sample((10, 11 * GiB))], {10: "c-a"}, {("c-a", DEV): 10 * GiB})
    assert [a.action for a in dog.enforce(over, now=0.0)] == ["terminate"]
    assert dog.enforce(over, now=1.0) == []
    assert [a.action for a in dog.enforce(over, now=2.5)] == ["kill"]
    assert sent == [(10, signal.SIGTERM), (10, signal.SIGKILL)]


@pytest.mark.parametrize(("mode", "actions"), [(WatchdogMode.WARN, ["over_quota"]), (WatchdogMode.OFF, [])])
def test_warn_and_off_never_signal(mode: WatchdogMode, actions: list[str]) -> None:
    sent: list[tuple[int, int]] = []
    dog = Watchdog(mode, send_signal=lambda pid, sig: sent.append((pid, sig)))
    over = find_overuse([sample((10, 11 * GiB))], {10: "c-a"}, {("c-a", DEV): 10 * GiB})
    assert [a.action for a in dog.enforce(over, 0.0)] == actions
    assert dog.enforce(over, 100.0) == []  # warned once per offence
    assert sent == []


def test_a_claims_processes_are_summed_and_all_stopped() -> None:
    owners = {10: "c-a", 11: "c-a", 20: "c-b"}
    limits = {("c-a", DEV): 10 * GiB, ("c-b", DEV): 10 * GiB}
    # Two processes of c-a, each under its 10 GiB, together over; c-b alone under.
    [over] = find_overuse([sample((10, 6 * GiB), (11, 7 * GiB), (20, 9 * GiB))], owners, limits)
    assert (over.claim_id, over.pids, over.used_memory_bytes, over.limit_bytes) == (
        "c-a", (11, 10), 13 * GiB, 10 * GiB
    )  # fmt: skip
    sent: list[tuple[int, int]] = []
    dog = Watchdog(WatchdogMode.KILL, grace_s=1.0, send_signal=lambda pid, sig: sent.append((pid, sig)))
    assert [a.action for a in dog.enforce([over], now=0.0)] == ["terminate"]
    assert [a.action for a in dog.enforce([over], now=1.5)] == ["kill"]
    assert sent == [(11, signal.SIGTERM), (10, signal.SIGTERM), (11, signal.SIGKILL), (10, signal.SIGKILL)]
    assert dog.enforce([], now=2.0) == [], "back under quota: the offence is over"
