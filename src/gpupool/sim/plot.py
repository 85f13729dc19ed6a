"""Plot of a simulation report (matplotlib, Agg backend, imported only when a plot is asked for)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_report(report: dict[str, Any], out: Path) -> Path:
    """Allocation ratio vs arrived % per policy (like Fig. 9a) beside unallocated % at 100 (bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies: dict[str, Any] = report["policies"]
    fig, (curves, bars) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    zoom = curves.inset_axes((0.5, 0.08, 0.47, 0.45))  # the part where policies differ
    tops = []
    for index, (name, data) in enumerate(policies.items()):
        curve = data["allocation_pct_curve"]
        curves.plot(range(len(curve)), curve, label=name, linewidth=1.4, color=f"C{index}")
        zoom.plot(range(len(curve)), curve, linewidth=1.2, color=f"C{index}")
        tops.append(max(curve[90:]) if len(curve) > 90 else max(curve))
    curves.plot([0, 100], [0, 100], color="grey", linewidth=0.6, linestyle=":")
    zoom.plot([0, 100], [0, 100], color="grey", linewidth=0.6, linestyle=":")
    zoom.set_xlim(85, 130)
    zoom.set_ylim(max(0.0, sorted(tops)[len(tops) // 2] - 6), min(100.0, max(tops) + 1.5))
    zoom.tick_params(labelsize=7)
    zoom.grid(alpha=0.3)
    curves.set_xlabel("arrived workload (% of GPU capacity)")
    curves.set_ylabel("GPU allocation ratio (%)")
    curves.set_xlim(0, 130)
    curves.set_ylim(0, 100)
    curves.grid(alpha=0.3)
    curves.legend(loc="upper left", fontsize=8)
    names = list(policies)
    values = [policies[name]["unallocated_pct"]["100"] for name in names]
    bars.bar(names, values, color=[f"C{i}" for i in range(len(names))])
    for index, value in enumerate(values):
        bars.text(index, value, f"{value:.2f}", ha="center", va="bottom", fontsize=8)
    bars.set_ylabel("unallocated GPU (%) at arrived 100%")
    bars.tick_params(axis="x", rotation=45, labelsize=8)
    seeds = report.get("seeds", [])
    fig.suptitle(f"{Path(report['pods']).name}: median of {len(seeds)} seeds")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
