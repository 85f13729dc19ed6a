"""The FGD authors' published per-seed results (`fgd-expected-results/analysis_allo_discrete.csv`)."""

from __future__ import annotations

import csv
from pathlib import Path
from statistics import median

ARTIFACT_NAMES = {
    "random": "01-Random",
    "dotprod": "02-DotProd",
    "gpu-clustering": "03-GpuClustering",
    "gpu-packing": "04-GpuPacking",
    "bestfit": "05-BestFit",
    "fgd": "06-FGD",
}


def published_unallocated(
    allocation_csv: Path, trace: str, policy: str, points: tuple[int, ...] = (100, 130)
) -> dict[int, float] | None:
    """Median over seeds of unallocated GPU % at each arrived % (None when not published)."""
    name = ARTIFACT_NAMES.get(policy)
    if name is None:
        return None
    values: dict[int, list[float]] = {point: [] for point in points}
    with allocation_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["workload"] == trace and row["sc_policy"] == name:
                for point in points:
                    values[point].append(100.0 - float(row[str(point)]))
    if not values[points[0]]:
        return None
    return {point: median(samples) for point, samples in values.items()}
