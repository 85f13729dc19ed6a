"""`gpupool serve` flags of the node agent: leases, idle reclaim, watchdog, MPS and MIG."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from gpupool.agent import AgentOptions

WATCHDOG_MODES = ("kill", "warn", "off")
MPS_MODES = ("auto", "on", "off")

LeaseTtlOpt = Annotated[
    float,
    typer.Option("--lease-ttl", min=0.5, help="seconds a `gpupool run` may miss heartbeats before reclaim"),
]
IdleTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--idle-timeout", min=0, help="default seconds of no GPU activity before a claim is reclaimed"
    ),
]
WatchdogOpt = Annotated[str, typer.Option("--watchdog", help="over-quota processes: kill | warn | off")]
WatchdogGraceOpt = Annotated[
    float, typer.Option("--watchdog-grace", min=0, help="seconds between SIGTERM and SIGKILL")
]
TelemetryIntervalOpt = Annotated[
    float, typer.Option("--telemetry-interval", min=0.05, help="seconds between telemetry samples")
]
MpsOpt = Annotated[str, typer.Option("--mps", help="MPS daemons for fractional vGPUs: auto | on | off")]
MpsControlOpt = Annotated[str, typer.Option("--mps-control", help="path of nvidia-cuda-mps-control")]
StateDirOpt = Annotated[
    Path | None, typer.Option("--state-dir", help="workload logs and MPS dirs (default: data dir/state)")
]
KillUnclaimedOpt = Annotated[
    bool,
    typer.Option(
        "--kill-unclaimed", help="stop GPU processes that belong to no claim (default: report only)"
    ),
]
MigReconfigOpt = Annotated[
    bool, typer.Option("--allow-mig-reconfig", help="let gpupool create MIG instances (changes the card)")
]


def agent_options(
    lease_ttl: float,
    idle_timeout: float | None,
    watchdog: str,
    watchdog_grace: float,
    telemetry_interval: float,
    mps: str,
    mps_control: str,
    state_dir: Path | None,
    allow_mig_reconfig: bool,
    kill_unclaimed: bool = False,
) -> AgentOptions:
    """Check the flags and build the agent's settings (one-line errors name the flag)."""
    from gpupool.agent import AgentOptions, MpsMode
    from gpupool.isolation import WatchdogMode

    if watchdog not in WATCHDOG_MODES:
        raise typer.BadParameter(f"expected one of {', '.join(WATCHDOG_MODES)}", param_hint="--watchdog")
    if mps not in MPS_MODES:
        raise typer.BadParameter(f"expected one of {', '.join(MPS_MODES)}", param_hint="--mps")
    return AgentOptions(
        state_dir=state_dir,
        lease_ttl_s=lease_ttl,
        reaper_interval_s=min(0.5, lease_ttl / 4),
        telemetry_interval_s=telemetry_interval,
        idle_timeout_s=idle_timeout or None,
        watchdog=WatchdogMode(watchdog),
        watchdog_grace_s=watchdog_grace,
        stop_grace_s=max(watchdog_grace, 1.0),
        mps=MpsMode(mps),
        mps_control=mps_control,
        mps_check_interval_s=max(1.0, telemetry_interval * 2.5),
        allow_mig_reconfig=allow_mig_reconfig,
        kill_unclaimed=kill_unclaimed,
    )
