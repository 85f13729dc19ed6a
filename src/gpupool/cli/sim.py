"""`gpupool sim`: replay a cluster trace (openb CSV schema) through the real scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from gpupool.cli.output import console

DEFAULT_POLICIES = "fgd,bestfit,default"


def sim(
    nodes: Annotated[
        Path | None, typer.Option("--nodes", help="node list CSV (openb schema); default: built-in synthetic")
    ] = None,
    pods: Annotated[
        Path | None, typer.Option("--pods", help="pod list CSV (openb schema); default: built-in synthetic")
    ] = None,
    policy: Annotated[str, typer.Option("--policy", help="comma-separated policies")] = DEFAULT_POLICIES,
    seeds: Annotated[str, typer.Option("--seeds", help="e.g. 42-51 or 42,43")] = "42-51",
    json_out: Annotated[Path | None, typer.Option("--json", help="write the report as JSON here")] = None,
    plot_out: Annotated[Path | None, typer.Option("--plot", help="write a PNG plot here")] = None,
    workers: Annotated[int | None, typer.Option("--workers", min=1, help="parallel processes")] = None,
) -> None:
    """Replay a trace with every policy and seed; report unallocated GPU % at 100% and 130% arrived.

    Without --nodes/--pods it replays a built-in synthetic cluster and workload shaped like
    Alibaba's openb trace (the real trace is not shipped: see docs/simulator.md)."""
    from gpupool.sim.cli import check_plot_available, parse_seeds, run_sim, trace_paths, write_plot

    policies = [p.strip() for p in policy.split(",") if p.strip()]
    if not policies:
        raise typer.BadParameter("no policy given", param_hint="--policy")
    if plot_out is not None:
        check_plot_available()  # before minutes of replays, not after
    nodes, pods = trace_paths(nodes, pods)
    report = run_sim(nodes, pods, policies, parse_seeds(seeds), json_out, None, workers)
    _print_report(report)
    if plot_out is not None:
        console.print(f"plot written to {write_plot(report, plot_out)}")


def _print_report(report: dict[str, Any]) -> None:
    title = f"{Path(report['pods']).name}, median of {len(report['seeds'])} seed(s)"
    table = Table(title=title, title_justify="left")
    for column in ("POLICY", "UNALLOCATED @100%", "UNALLOCATED @130%", "DECISION MEDIAN", "DECISION P99"):
        table.add_column(column, justify="right")
    for name, row in report["policies"].items():
        unallocated = row["unallocated_pct"]
        table.add_row(
            name,
            f"{unallocated.get('100', float('nan')):.2f}%",
            f"{unallocated.get('130', float('nan')):.2f}%",
            f"{row['decision_ms_median']:.3f} ms",
            f"{row['decision_ms_p99']:.3f} ms",
        )
    console.print(table)
