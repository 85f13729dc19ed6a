"""`run_sim` end to end on a small synthetic trace: report shape, JSON and PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.errors import InvalidRequest
from gpupool.sim.cli import run_sim


def synthetic(tmp_path: Path) -> tuple[Path, Path]:
    nodes = tmp_path / "nodes.csv"
    nodes.write_text(
        "sn,cpu_milli,memory_mib,gpu,model\n"
        + "".join(
            f"node-{i:02d},{32000 + 32000 * (i % 3)},262144,{(2, 4, 8)[i % 3]},{('T4', 'G2')[i % 2]}\n"
            for i in range(12)
        )
    )
    pods = tmp_path / "pods.csv"
    shapes = [(4000, 1, 500), (8000, 1, 1000), (2000, 0, 0), (12000, 2, 1000), (3000, 1, 250)]
    pods.write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec\n"
        + "".join(
            f"pod-{i:03d},{c},{1024},{g},{m},{'T4' if i % 7 == 0 and g else ''}\n"
            for i, (c, g, m) in enumerate(shapes[i % len(shapes)] for i in range(60))
        )
    )
    return nodes, pods


def test_run_sim_report_json_and_plot(tmp_path: Path) -> None:
    nodes, pods = synthetic(tmp_path)
    report = run_sim(
        nodes,
        pods,
        ["fgd", "bestfit", "default"],
        [1, 2],
        tmp_path / "out.json",
        tmp_path / "out.png",
        workers=1,
    )
    assert list(report["policies"]) == ["fgd", "bestfit", "default"]
    for data in report["policies"].values():
        assert set(data["unallocated_pct"]) == {"100", "130"}
        assert 0 <= data["unallocated_pct"]["130"] <= 100
        assert data["decision_ms_median"] > 0 and data["decision_ms_p99"] >= data["decision_ms_median"]
        assert len(data["allocation_pct_curve"]) == 131
    assert json.loads((tmp_path / "out.json").read_text()) == report
    assert (tmp_path / "out.png").read_bytes()[:4] == b"\x89PNG"


def test_run_sim_refuses_unknown_policy(tmp_path: Path) -> None:
    nodes, pods = synthetic(tmp_path)
    with pytest.raises(InvalidRequest, match="unknown policy"):
        run_sim(nodes, pods, ["nope"], [1])
