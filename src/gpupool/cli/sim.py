"""`gpupool sim`: replay a cluster trace (openb CSV schema) through the real scheduler."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from gpupool.cli.output import console

DEFAULT_POLICIES = "fgd,bestfit,default"


app = typer.Typer(help="Replay a cluster trace through the real scheduler; `gen` makes trace variants.")


@app.callback(invoke_without_command=True)
def sim(
    ctx: typer.Context,
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

    if ctx.invoked_subcommand is not None:
        return
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


@app.command()
def gen(
    source: Annotated[
        str, typer.Option("--from", help="trace name (default, gpushare40, ...) or pod list CSV")
    ],
    out: Annotated[Path, typer.Option("-o", "--out", help="where to write the variant CSV")],
    multi_gpu_share: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="multi-GPU pods' share of GPU demand")
    ] = None,
    gpu_spec_share: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="share of GPU pods with a GPU-type constraint")
    ] = None,
    sharing_share: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="sharing (fractional) pods' share of GPU demand")
    ] = None,
    cpu_only_share: Annotated[
        float | None, typer.Option(min=0.0, max=1.0, help="CPU-only pods' share of all pods")
    ] = None,
    max_demand: Annotated[
        float, typer.Option(min=0.01, help="trim GPU demand above this x cluster GPU capacity")
    ] = 1.3,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    spec_weights: Annotated[
        str, typer.Option(help="a constraint's model drawn in proportion to: gpus, nodes, models (uniform)")
    ] = "gpus",
    nodes: Annotated[
        Path | None,
        typer.Option("--nodes", help="node list CSV (default: the gpu node list beside named traces)"),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="folder of named traces (default: $GPUPOOL_TRACE_DIR or ./shared/...)"),
    ] = None,
) -> None:
    """Write a trace variant with the asked shares (rules of the FGD paper's variants, see docs)."""
    from gpupool.sim.variants import NODE_LIST, VariantSpec, make_variant, source_path, trace_dir

    spec = VariantSpec(
        multi_gpu_share, gpu_spec_share, sharing_share, cpu_only_share, max_demand, seed, spec_weights
    )
    path = source_path(source, data)
    if nodes is None:
        folder = trace_dir(data) if not (path.parent / NODE_LIST).is_file() else path.parent
        nodes = (folder or path.parent) / NODE_LIST
    shares = make_variant(path, nodes, spec, out)
    console.print(
        f"{out}: {int(shares['pods'])} pods, GPU demand {shares['gpu_demand']:.1f} GPUs; "
        f"multi-GPU {shares['multi_gpu_share']:.1%} and sharing {shares['sharing_share']:.1%} of GPU demand, "
        f"GPU-type constrained {shares['gpu_spec_share']:.1%} of GPU pods, "
        f"CPU-only {shares['cpu_only_share']:.1%} of pods"
    )
