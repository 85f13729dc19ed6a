"""Issue 10, point 1: `gpupool sim` works out of the box on a built-in synthetic trace, `--plot`
without matplotlib fails before any replay with one line naming the fix, and the results table is
printed before the plot. (The README's own simulator example runs from a fresh copy in
test_readme_examples.py.)"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from gpupool.sim import synthetic


def gpupool(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpupool", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "120", "NO_COLOR": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_shipped_trace_is_exactly_what_the_generator_draws() -> None:
    nodes_text, pods_text = synthetic.render()
    assert synthetic.NODES_FILE.read_text() == nodes_text, "run `python -m gpupool.sim.synthetic`"
    assert synthetic.PODS_FILE.read_text() == pods_text, "run `python -m gpupool.sim.synthetic`"
    nodes = list(csv.DictReader(synthetic.NODES_FILE.open()))
    pods = list(csv.DictReader(synthetic.PODS_FILE.open()))
    gpus = sum(int(row["gpu"]) for row in nodes)
    demand = sum(int(row["num_gpu"]) * int(row["gpu_milli"]) for row in pods) / 1000
    assert len(nodes) == 122 and gpus == 625
    assert 0.97 < demand / gpus < 0.99, "as much GPU demand as openb's default trace (98 %)"
    assert {row["model"] for row in nodes} == {"G2", "T4", "P100", "G3", "V100M16", "V100M32", "A10"}
    assert all(row["sn"].startswith("syn-node-") for row in nodes), "no openb node name"
    assert all(row["name"].startswith("syn-pod-") for row in pods), "no openb pod name"
    fractional = [row for row in pods if row["num_gpu"] == "1" and int(row["gpu_milli"]) < 1000]
    assert 0.35 < len(fractional) / len(pods) < 0.40, "openb: 37.8 % of pods share a GPU"


def test_sim_with_no_trace_replays_the_synthetic_one_and_prints_the_table_before_the_plot(
    tmp_path: Path,
) -> None:
    done = gpupool("sim", "--policy", "bestfit", "--seeds", "42", "--plot", "out.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "synthetic_openb_pods.csv, median of 1 seed(s)" in done.stdout
    assert "bestfit" in done.stdout
    table_at = done.stdout.index("UNALLOCATED")
    plot_at = done.stdout.index("plot written to out.png")
    assert table_at < plot_at, "the results table comes before the plot"
    assert (tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"


def test_plot_without_matplotlib_fails_at_once_with_the_fix(tmp_path: Path) -> None:
    # A stand-in `matplotlib` that cannot be imported, exactly as when the plot extra is missing.
    shadow = tmp_path / "shadow" / "matplotlib"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'matplotlib'\", name='matplotlib')\n"
    )
    started = time.monotonic()
    done = gpupool(
        "sim", "--seeds", "42-51", "--plot", "out.png", cwd=tmp_path, env={"PYTHONPATH": str(shadow.parent)}
    )
    assert done.returncode == 2
    assert done.stderr == (
        "gpupool: error: plot: needs matplotlib, which is not installed: pip install 'gpupool[plot]' "
        "(in a clone: .venv/bin/pip install -e '.[plot]')\n"
    )
    assert done.stdout == "", "no replay started, no table"
    assert time.monotonic() - started < 60, "refused before 30 replays, not after"
    assert not (tmp_path / "out.png").exists()


def test_half_a_trace_is_refused(tmp_path: Path) -> None:
    done = gpupool("sim", "--nodes", str(synthetic.NODES_FILE), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "gpupool: error: --pods: give both --nodes and --pods, or neither for the built-in trace"
    )
