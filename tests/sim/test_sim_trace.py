"""Reading the openb CSV schema, the arrival stream and the post-processing, on tiny synthetic traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpupool.errors import InvalidRequest
from gpupool.sim.arrival import arrival_order
from gpupool.sim.cli import parse_seeds
from gpupool.sim.metrics import bucketize
from gpupool.sim.trace import read_nodes, read_pods

NODES = "sn,cpu_milli,memory_mib,gpu,model\nn-1,32000,65536,2,T4\nn-0,64000,131072,4,G2\n"
PODS = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos\n"
    "p-2,4000,1024,1,500,,LS\n"
    "p-0,8000,2048,2,1000,T4|G2,BE\n"
    "p-1,1000,512,0,0,,BE\n"
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_read_sorted_by_name(tmp_path: Path) -> None:
    nodes = read_nodes(write(tmp_path, "n.csv", NODES))
    pods = read_pods(write(tmp_path, "p.csv", PODS))
    assert nodes.names == ["n-0", "n-1"] and nodes.gpus == [4, 2] and nodes.total_gpu_milli == 6000
    assert pods.names == ["p-0", "p-1", "p-2"]
    assert pods.specs == [("T4", "G2"), None, None]
    assert pods.request(0).total_gpu_milli == 2000 and pods.request(1).gpus == 0


def test_pod_list_without_spec_column(tmp_path: Path) -> None:
    pods = read_pods(write(tmp_path, "p.csv", "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np,1,1,1,100\n"))
    assert pods.specs == [None]


def test_missing_column_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="missing columns gpu"):
        read_nodes(write(tmp_path, "n.csv", "sn,cpu_milli,memory_mib,model\n"))


def test_inflation_appends_resamples_after_shuffled_originals(tmp_path: Path) -> None:
    pods = read_pods(write(tmp_path, "p.csv", PODS))
    order = arrival_order(pods, capacity_gpu_milli=6000, seed=42)
    assert sorted(order[:3].tolist()) == [0, 1, 2]
    demand = sum(pods.request(int(i)).total_gpu_milli for i in order)
    assert 6000 * 1.3 - 1000 < demand <= 6000 * 1.3 + 1000  # stops at the first per-GPU overshoot
    assert order.tolist() == arrival_order(pods, 6000, seed=42).tolist()


def test_deflation_drops_pods(tmp_path: Path) -> None:
    pods = read_pods(write(tmp_path, "p.csv", PODS))
    order = arrival_order(pods, capacity_gpu_milli=1000, seed=1)
    assert sum(pods.request(int(i)).total_gpu_milli for i in order) <= 1300


def test_bucketize_means_and_fills_gaps() -> None:
    arrived = np.asarray([0, 10, 20, 40], dtype=np.int64)  # of 1000 milli capacity: 0%, 1%, 2%, 4%
    used = np.asarray([0, 10, 10, 30], dtype=np.int64)
    curves = bucketize(arrived, used, np.zeros(4), 1000)
    assert curves.allocation_pct[:5].tolist() == [0.0, 1.0, 1.0, 1.0, 3.0]  # 3% empty -> takes 2%


@pytest.mark.parametrize(
    ("text", "seeds"),
    [("42-51", list(range(42, 52))), ("42", [42]), ("1,3-4", [1, 3, 4])],
)
def test_parse_seeds(text: str, seeds: list[int]) -> None:
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "x", "5-3"])
def test_parse_seeds_refuses(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_seeds(text)
