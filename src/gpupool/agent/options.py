"""Settings of the node agent (the `gpupool serve` flags that shape it)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from gpupool.isolation import WatchdogMode
from gpupool.isolation.mps import DEFAULT_CONTROL_BINARY


class MpsMode(enum.StrEnum):
    AUTO = "auto"  # on when the control binary is found and the devices are real
    ON = "on"
    OFF = "off"


@dataclass(frozen=True)
class AgentOptions:
    """Times are in seconds. `idle_timeout_s` None or 0 turns idle reclaim off by default."""

    state_dir: Path | None = None  # default: <data dir>/state
    tick_s: float = 0.2
    lease_ttl_s: float = 30.0
    reaper_interval_s: float = 0.5
    telemetry_interval_s: float = 2.0
    idle_timeout_s: float | None = None
    idle_utilization_percent: float = 1.0  # at or below this a claim counts as idle
    watchdog: WatchdogMode = WatchdogMode.KILL
    watchdog_grace_s: float = 10.0
    stop_grace_s: float = 10.0
    mps: MpsMode = MpsMode.AUTO
    mps_control: str = DEFAULT_CONTROL_BINARY
    mps_check_interval_s: float = 5.0
    allow_mig_reconfig: bool = False
    watch_unclaimed: bool = True  # report GPU processes that belong to no claim (local devices)
    kill_unclaimed: bool = False  # and stop them (SIGTERM, SIGKILL after the watchdog grace)
