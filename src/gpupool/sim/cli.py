"""`gpupool sim`: the command's implementation as plain functions (the CLI layer wires them to Typer)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gpupool.errors import InvalidRequest
from gpupool.scheduler.profiles import resolve
from gpupool.sim.engine import RunResult
from gpupool.sim.runner import Job, run_jobs, summarise
from gpupool.sim.synthetic import NODES_FILE, PODS_FILE

REPORT_POINTS = (100, 130)
PLOT_FIX = "pip install 'gpupool[plot]' (in a clone: .venv/bin/pip install -e '.[plot]')"


def trace_paths(nodes: Path | None, pods: Path | None) -> tuple[Path, Path]:
    """The trace to replay: both files given, or neither for the built-in synthetic one."""
    if nodes is None and pods is None:
        return NODES_FILE, PODS_FILE
    if nodes is None or pods is None:
        missing = "--nodes" if nodes is None else "--pods"
        raise InvalidRequest(f"{missing}: give both --nodes and --pods, or neither for the built-in trace")
    return nodes, pods


def check_plot_available() -> None:
    """Refuse a plot up front when matplotlib (the `plot` extra) cannot be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InvalidRequest(f"plot: needs matplotlib, which is not installed: {PLOT_FIX}") from None


def write_plot(report: dict[str, Any], out: Path) -> Path:
    """The report's plot as a PNG (matplotlib is imported only here)."""
    from gpupool.sim.plot import plot_report

    return plot_report(report, out)


def parse_seeds(text: str) -> list[int]:
    """'42-51' -> [42, ..., 51]; also '42,45,50-51'."""
    seeds: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part[1:]:
                low, high = part.split("-", 1) if not part.startswith("-") else ("", "")
                start, stop = int(low), int(high)
                if stop < start:
                    raise ValueError(part)
                seeds.extend(range(start, stop + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise InvalidRequest(f"seeds: cannot parse {text!r} (use e.g. '42-51' or '42,43')") from None
    if not seeds:
        raise InvalidRequest("seeds: no seed given")
    return seeds


def run_sim(
    nodes: Path,
    pods: Path,
    policies: list[str],
    seeds: list[int],
    json_out: Path | None = None,
    plot_out: Path | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Replay `pods` on `nodes` for every policy and seed; the report (also written as JSON / PNG)."""
    for policy in policies:
        resolve(policy)  # unknown names fail before any work starts
    if plot_out is not None:
        check_plot_available()
    for path in (nodes, pods):
        if not path.is_file():
            raise InvalidRequest(f"{path}: no such file")
    jobs = [Job(nodes, pods, policy, seed) for policy in policies for seed in seeds]
    with Progress(
        TextColumn("[bold]sim[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    ) as progress:
        task = progress.add_task(pods.name, total=len(jobs))

        def done(result: RunResult) -> None:
            progress.update(task, advance=1, description=f"{pods.name} {result.policy} seed {result.seed}")

        results = run_jobs(jobs, workers, done)
    report: dict[str, Any] = {"nodes": str(nodes), "pods": str(pods), "seeds": seeds, "policies": {}}
    for number, policy in enumerate(policies):
        summary = summarise(results[number * len(seeds) : (number + 1) * len(seeds)], REPORT_POINTS)
        report["policies"][policy] = {
            "unallocated_pct": {
                str(point): round(value, 3) for point, value in summary.unallocated_pct.items()
            },
            "decision_ms_median": round(summary.decision_ms_median, 4),
            "decision_ms_p99": round(summary.decision_ms_p99, 4),
            "replay_s_median": round(summary.replay_s_median, 3),
            "allocation_pct_curve": summary.allocation_pct_curve,
        }
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2) + "\n")
    if plot_out is not None:
        write_plot(report, plot_out)
    return report
