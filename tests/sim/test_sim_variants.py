"""The trace-variant generator: the shares come out as asked, on the real default trace and a small one."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from gpupool.errors import InvalidRequest
from gpupool.sim.trace import NodeTable, read_nodes, read_pods
from gpupool.sim.variants import (
    VariantSpec,
    demand_milli,
    family,
    generate,
    gpus,
    is_multi,
    is_sharing,
    measured_shares,
    read_rows,
    spec_of,
)

CSV = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "alibaba-gpu-v2023" / "csv"
NODES = CSV / "openb_node_list_gpu_node.csv"
DEFAULT = CSV / "openb_pod_list_default.csv"
needs_data = pytest.mark.skipif(not DEFAULT.is_file(), reason="shared openb data not present")

DEMAND_TOLERANCE = 0.005  # one resampled 8-GPU pod moves a demand share of ~8,000 GPUs by 0.1 %


@pytest.fixture(scope="module")
def openb() -> tuple[NodeTable, list[dict[str, str]]]:
    return read_nodes(NODES), read_rows(DEFAULT)


def small_trace(tmp_path: Path) -> tuple[NodeTable, list[dict[str, str]]]:
    nodes = tmp_path / "nodes.csv"
    nodes.write_text(
        "sn,cpu_milli,memory_mib,gpu,model\n"
        "n1,96000,393216,8,G2\nn2,96000,393216,8,G2\nn3,32000,131072,4,V100M16\n"
        "n4,96000,786432,8,V100M32\nn5,104000,524288,2,T4\n"
    )
    shapes = [
        (4000, 1, 500),
        (8000, 1, 1000),
        (2000, 0, 0),
        (12000, 2, 1000),
        (3000, 1, 250),
        (40000, 8, 1000),
    ]
    rows = [
        {
            "name": f"pod-{i:03d}",
            "cpu_milli": str(c),
            "memory_mib": "1024",
            "num_gpu": str(g),
            "gpu_milli": str(m),
        }
        for i, (c, g, m) in enumerate(shapes[i % len(shapes)] for i in range(120))
    ]
    return read_nodes(nodes), rows


@needs_data
@pytest.mark.parametrize("share", [0.2, 0.3, 0.4, 0.5], ids=lambda s: f"multi{s}")
def test_multi_gpu_share_of_demand_comes_out_as_asked(
    openb: tuple[NodeTable, list[dict[str, str]]], share: float
) -> None:
    nodes, rows = openb
    variant = generate(rows, nodes, VariantSpec(multi_gpu_share=share, seed=3))
    shares = measured_shares(variant)
    assert abs(shares["multi_gpu_share"] - share) <= DEMAND_TOLERANCE, shares
    assert shares["gpu_demand"] * 1000 <= 1.3 * nodes.total_gpu_milli  # trimmed above 130 %
    # only multi-GPU pods are added: the source's single-GPU pods are all there unless trimmed
    singles = Counter(r["name"] for r in variant if gpus(r) == 1)
    assert all("-r" not in name for name in singles)
    assert all(is_multi(r) for r in variant if "-r" in r["name"])


@needs_data
@pytest.mark.parametrize("share", [0.0, 0.2, 0.6, 1.0], ids=lambda s: f"share{s}")
def test_sharing_share_of_demand_comes_out_as_asked(
    openb: tuple[NodeTable, list[dict[str, str]]], share: float
) -> None:
    nodes, rows = openb
    variant = generate(rows, nodes, VariantSpec(sharing_share=share, seed=5))
    assert abs(measured_shares(variant)["sharing_share"] - share) <= DEMAND_TOLERANCE
    # like the gpushare files: the pod count and the GPU pod count stay
    assert len(variant) == len(rows)
    assert sum(1 for r in variant if gpus(r)) == sum(1 for r in rows if gpus(r))


@needs_data
@pytest.mark.parametrize("share", [0.05, 0.25, 0.33], ids=lambda s: f"spec{s}")
def test_gpu_spec_share_of_gpu_pods_and_feasible_models(
    openb: tuple[NodeTable, list[dict[str, str]]], share: float
) -> None:
    nodes, rows = openb
    variant = generate(rows, nodes, VariantSpec(gpu_spec_share=share, seed=7))
    gpu_pods = [r for r in variant if gpus(r)]
    constrained = [r for r in gpu_pods if spec_of(r)]
    assert abs(len(constrained) - share * len(gpu_pods)) <= 1
    assert all(not spec_of(r) for r in variant if not gpus(r))
    hosts = list(zip(nodes.models, nodes.gpus, nodes.cpu_milli, nodes.memory_mib, strict=True))
    for row in constrained:
        models = spec_of(row).split("|")
        assert len({family(m) for m in models}) == 1  # one family, e.g. V100M16|V100M32
        assert any(
            m in models and g >= gpus(row) and c >= int(row["cpu_milli"]) and mem >= int(row["memory_mib"])
            for m, g, c, mem in hosts
        ), row
    # proportions follow the cluster's GPUs per model: G2 (71 % of GPUs) leads, every family appears
    counts = Counter(family(spec_of(r).split("|")[0]) for r in constrained)
    assert counts.most_common(1)[0][0] == "G2"
    if share >= 0.25:
        assert {"G2", "T4", "V100", "P100", "G3"} <= set(counts)


@needs_data
def test_cpu_only_share_of_pods_keeps_gpu_pods(openb: tuple[NodeTable, list[dict[str, str]]]) -> None:
    nodes, rows = openb
    for share in (0.05, 0.25):
        variant = generate(rows, nodes, VariantSpec(cpu_only_share=share, seed=1))
        assert abs(measured_shares(variant)["cpu_only_share"] - share) <= 0.001
        assert [r for r in variant if gpus(r)] == [r for r in rows if gpus(r)]


@needs_data
def test_combined_shares_all_hold(openb: tuple[NodeTable, list[dict[str, str]]]) -> None:
    nodes, rows = openb
    spec = VariantSpec(
        multi_gpu_share=0.4, sharing_share=0.5, gpu_spec_share=0.2, cpu_only_share=0.1, seed=11
    )
    shares = measured_shares(generate(rows, nodes, spec))
    assert abs(shares["multi_gpu_share"] - 0.4) <= DEMAND_TOLERANCE
    assert abs(shares["sharing_share"] - 0.5) <= DEMAND_TOLERANCE
    assert abs(shares["gpu_spec_share"] - 0.2) <= 0.001
    assert abs(shares["cpu_only_share"] - 0.1) <= 0.001
    assert shares["gpu_demand"] * 1000 <= 1.3 * nodes.total_gpu_milli


@needs_data
@pytest.mark.parametrize(("multi", "sharing"), [(0.25, 0.5), (0.4, 0.6), (0.1, 0.1)], ids=str)
def test_multi_and_sharing_shares_together(
    openb: tuple[NodeTable, list[dict[str, str]]], multi: float, sharing: float
) -> None:
    nodes, rows = openb
    shares = measured_shares(generate(rows, nodes, VariantSpec(multi_gpu_share=multi, sharing_share=sharing)))
    assert abs(shares["multi_gpu_share"] - multi) <= DEMAND_TOLERANCE, shares
    assert abs(shares["sharing_share"] - sharing) <= DEMAND_TOLERANCE, shares


def test_trim_keeps_class_shares_and_max_demand(tmp_path: Path) -> None:
    nodes, rows = small_trace(tmp_path)
    before = measured_shares(rows)
    limit = 0.5 * nodes.total_gpu_milli
    assert before["gpu_demand"] * 1000 > limit
    variant = generate(rows, nodes, VariantSpec(max_demand=0.5, seed=2))
    after = measured_shares(variant)
    assert after["gpu_demand"] * 1000 <= limit
    assert abs(after["sharing_share"] - before["sharing_share"]) <= 0.03
    assert abs(after["multi_gpu_share"] - before["multi_gpu_share"]) <= 0.06  # 8-GPU pods are coarse here
    assert sum(1 for r in variant if not gpus(r)) == sum(1 for r in rows if not gpus(r))


def test_same_seed_same_variant_other_seed_other(tmp_path: Path) -> None:
    nodes, rows = small_trace(tmp_path)
    spec = {"multi_gpu_share": 0.6, "gpu_spec_share": 0.3}
    first = generate(rows, nodes, VariantSpec(**spec, seed=1))  # type: ignore[arg-type]
    assert first == generate(rows, nodes, VariantSpec(**spec, seed=1))  # type: ignore[arg-type]
    assert first != generate(rows, nodes, VariantSpec(**spec, seed=2))  # type: ignore[arg-type]
    assert len({r["name"] for r in first}) == len(first)  # resampled copies get their own names


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"multi_gpu_share": 1.2}, "between 0 and 1"),
        ({"sharing_share": -0.1}, "between 0 and 1"),
        ({"multi_gpu_share": 0.6, "sharing_share": 0.5}, "at most 1"),
        ({"cpu_only_share": 1.0}, "below 1"),
        ({"multi_gpu_share": 1.0}, "below 1"),
    ],
    ids=["multi>1", "sharing<0", "sum>1", "cpu-only=1", "multi=1"],
)
def test_bad_shares_are_refused(spec: dict[str, float], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        VariantSpec(**spec)  # type: ignore[arg-type]


def test_a_share_the_source_cannot_make_is_refused(tmp_path: Path) -> None:
    nodes, rows = small_trace(tmp_path)
    no_multi = [r for r in rows if not is_multi(r)]
    with pytest.raises(InvalidRequest, match="no multi-GPU pods"):
        generate(no_multi, nodes, VariantSpec(multi_gpu_share=0.3))
    no_sharing = [r for r in rows if not is_sharing(r)]
    with pytest.raises(InvalidRequest, match="no sharing pods"):
        generate(no_sharing, nodes, VariantSpec(sharing_share=0.3))


def test_cli_writes_a_variant_the_simulator_reads(tmp_path: Path) -> None:
    _, rows = small_trace(tmp_path)
    source = tmp_path / "pods.csv"
    source.write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n"
        + "".join(
            f"{r['name']},{r['cpu_milli']},{r['memory_mib']},{r['num_gpu']},{r['gpu_milli']}\n" for r in rows
        )
    )
    out = tmp_path / "variant.csv"
    args = ["--from", str(source), "--nodes", str(tmp_path / "nodes.csv"), "-o", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "gpupool", "sim", "gen", *args, "--multi-gpu-share", "0.5", "--seed", "4"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    pods = read_pods(out)
    demand = sum(g * m for g, m in zip(pods.gpus, pods.gpu_milli, strict=True))
    multi = sum(g * m for g, m in zip(pods.gpus, pods.gpu_milli, strict=True) if g >= 2)
    assert abs(multi / demand - 0.5) <= 0.05
    assert sum(demand_milli(r) for r in read_rows(out)) == demand
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpupool",
            "sim",
            "gen",
            *args,
            "--sharing-share",
            "0.7",
            "--multi-gpu-share",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "gpupool: error: --multi-gpu-share plus --sharing-share must be at most 1"
    ]


@needs_data
def test_spec_weights_move_constraints_to_scarce_models(
    openb: tuple[NodeTable, list[dict[str, str]]],
) -> None:
    nodes, rows = openb
    share_of_g2 = {}
    for weights in ("gpus", "nodes", "models"):
        variant = generate(rows, nodes, VariantSpec(gpu_spec_share=0.3, seed=2, spec_weights=weights))
        counts = Counter(spec_of(r) for r in variant if spec_of(r))
        share_of_g2[weights] = counts["G2"] / sum(counts.values())
    # G2 holds 71 % of the GPUs, 45 % of the nodes and is one of 6 families
    assert share_of_g2["gpus"] > 0.6 > share_of_g2["nodes"] > 0.35 > share_of_g2["models"] > 0.1
    with pytest.raises(InvalidRequest, match="spec-weights"):
        VariantSpec(spec_weights="bogus")
