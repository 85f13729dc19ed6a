"""The `gpupool` command line: Typer app, and one-line errors with exit code 2."""

from __future__ import annotations

import enum
import sys
from dataclasses import replace
from typing import Annotated

import typer

from gpupool import __version__
from gpupool.cli import claims, inventory, kube, run, sim, tenants, top, vm, workloads
from gpupool.cli.output import EXIT_USAGE
from gpupool.cli.serve_agent import (
    IdleTimeoutOpt,
    KillUnclaimedOpt,
    LeaseTtlOpt,
    MigReconfigOpt,
    MpsControlOpt,
    MpsOpt,
    StateDirOpt,
    TelemetryIntervalOpt,
    WatchdogGraceOpt,
    WatchdogOpt,
    agent_options,
)
from gpupool.errors import GpupoolError


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


app = typer.Typer(
    name="gpupool",
    help="Pool every GPU and hand out virtual GPUs: whole devices or fractions (memory + compute).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gpupool {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="show the version and exit")
    ] = False,
) -> None:
    """gpupool: GPU pooling and virtualization."""


@app.command()
def serve(
    simulate: Annotated[
        str | None, typer.Option("--simulate", help="simulated pool spec, e.g. 2x8xH100-80GB,1x4xA100-40GB")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, envvar="GPUPOOL_PORT")] = 7070,
    db: Annotated[str | None, typer.Option("--db", help="SQLite path or SQLAlchemy URL")] = None,
    policy: Annotated[str, typer.Option("--policy", help="scheduler policy")] = "default",
    log_level: Annotated[LogLevel, typer.Option("--log-level", case_sensitive=False)] = LogLevel.INFO,
    lease_ttl: LeaseTtlOpt = 30.0,
    idle_timeout: IdleTimeoutOpt = None,
    watchdog: WatchdogOpt = "kill",
    watchdog_grace: WatchdogGraceOpt = 10.0,
    telemetry_interval: TelemetryIntervalOpt = 2.0,
    mps: MpsOpt = "auto",
    mps_control: MpsControlOpt = "nvidia-cuda-mps-control",
    state_dir: StateDirOpt = None,
    allow_mig_reconfig: MigReconfigOpt = False,
    kill_unclaimed: KillUnclaimedOpt = False,
    ray: Annotated[
        str | None, typer.Option("--ray", help="cluster mode: join the Ray cluster at ADDRESS (or auto)")
    ] = None,
    preempt_grace: Annotated[
        float, typer.Option("--preempt-grace", min=0, help="seconds a preempted workload gets to stop")
    ] = 10.0,
    kube_config: kube.KubeOpt = None,
    kube_host: kube.KubeHostOpt = None,
    kube_port: kube.KubePortOpt = kube.DEFAULT_KUBE_PORT,
    kube_tls_cert: kube.KubeCertOpt = None,
    kube_tls_key: kube.KubeKeyOpt = None,
    kube_scheduler_name: kube.KubeSchedulerOpt = None,
    libvirt: Annotated[
        str | None, typer.Option("--libvirt", help="VM mode: pool this libvirt host's GPUs for its domains")
    ] = None,
    libvirt_gpus: Annotated[
        str | None,
        typer.Option(
            "--libvirt-gpus", help="GPUs from this libvirt URI instead (a test:/// host, to try VMs)"
        ),
    ] = None,
    libvirt_host_root: Annotated[
        str | None, typer.Option("--libvirt-host-root", help="that host's /sys and /dev are here (default /)")
    ] = None,
) -> None:
    """Run the pool: API, scheduler, store and node agent (a simulated pool when no GPU is found)."""
    from gpupool.api.server import ServeOptions
    from gpupool.api.server import serve as run_server

    agent = agent_options(
        lease_ttl, idle_timeout, watchdog, watchdog_grace, telemetry_interval, mps, mps_control, state_dir,
        allow_mig_reconfig, kill_unclaimed,
    )  # fmt: skip
    level = log_level.value
    options = ServeOptions(simulate=simulate, host=host, port=port, db=db, policy=policy, log_level=level)
    kube_opts = kube.kube_options(
        kube_config, host, kube_host, kube_port, kube_tls_cert, kube_tls_key, kube_scheduler_name
    )
    options = replace(
        options, libvirt=libvirt, libvirt_host_root=libvirt_host_root, libvirt_gpus=libvirt_gpus
    )
    run_server(replace(options, agent=agent, ray=ray, preempt_grace_s=preempt_grace, kube=kube_opts))


app.command()(claims.claim)
app.command()(claims.release)
app.command()(claims.ps)
app.command()(inventory.devices)
app.command()(inventory.events)
app.command()(top.top)
app.add_typer(tenants.app, name="tenants")
app.add_typer(vm.app, name="vm")
app.command(context_settings={"allow_interspersed_args": False})(run.run)
app.command()(workloads.logs)
app.command()(workloads.stop)
app.command("idle-timeout")(workloads.idle_timeout)
app.command()(sim.sim)
app.add_typer(kube.app, name="kube")


def main() -> None:
    try:
        app()
    except GpupoolError as exc:
        sys.stderr.write(f"gpupool: error: {exc.message}\n")
        raise SystemExit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None
