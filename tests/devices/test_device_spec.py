"""Parsing `NODESxGPUSxMODEL[,...]` pool specs and naming their nodes."""

from __future__ import annotations

import pytest

from gpupool.devices import node_layout, parse_spec
from gpupool.errors import InvalidRequest

GOOD = [
    ("2x8xH100-80GB", [(2, 8, "H100-80GB")]),
    ("2x8xH100-80GB,1x4xA100-40GB", [(2, 8, "H100-80GB"), (1, 4, "A100-40GB")]),
    (" 1 x 2 x l4 , 3X1Xt4 ", [(1, 2, "L4"), (3, 1, "T4")]),
    ("1x16xV100-32GB", [(1, 16, "V100-32GB")]),
    ("1x1xH200-141GB,1x1xH200-141GB", [(1, 1, "H200-141GB"), (1, 1, "H200-141GB")]),
]


@pytest.mark.parametrize(
    ("spec", "expected"), GOOD, ids=["one-group", "two-groups", "blanks-case", "16-gpus", "repeat"]
)
def test_good_specs(spec: str, expected: list[tuple[int, int, str]]) -> None:
    groups = parse_spec(spec)
    assert [(group.nodes, group.gpus_per_node, group.model.name) for group in groups] == expected


BAD = [
    ("", "empty"),
    ("   ", "empty"),
    ("2x8", "is not NODESxGPUSxMODEL"),
    ("8xH100-80GB", "is not NODESxGPUSxMODEL"),
    ("axbxH100-80GB", "is not NODESxGPUSxMODEL"),
    ("-1x8xH100-80GB", "is not NODESxGPUSxMODEL"),
    ("1.5x8xH100-80GB", "is not NODESxGPUSxMODEL"),
    ("1x8x", "is not NODESxGPUSxMODEL"),
    ("2x8xH100-80GB,", "group 2 '' is not"),
    ("0x8xH100-80GB", "at least 1 node"),
    ("1x0xH100-80GB", "1..16 GPUs per node"),
    ("1x17xH100-80GB", "1..16 GPUs per node"),
    ("1x8xH100-80GB,1x8xB300", "group 2: unknown GPU model 'B300'"),
    ("10001x1xT4", "at most 10000 nodes"),
    ("2x8xH100-80GB\n1x4xL4", "is not NODESxGPUSxMODEL"),
]


@pytest.mark.parametrize(
    ("spec", "problem"),
    BAD,
    ids=[
        "empty",
        "blank",
        "two-parts",
        "no-nodes",
        "letters",
        "negative",
        "fraction",
        "no-model",
        "trailing-comma",
        "zero-nodes",
        "zero-gpus",
        "too-many-gpus",
        "unknown-model",
        "too-many-nodes",
        "newline",
    ],
)
def test_bad_specs(spec: str, problem: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_spec(spec)
    message = info.value.message
    assert problem in message
    assert "expected NODESxGPUSxMODEL" in message
    assert "\n" not in message


def test_node_names_continue_across_groups() -> None:
    nodes = node_layout(parse_spec("2x1xT4,1x2xL4,1x8xH100-80GB"))
    assert [(node.name, node.group_index, node.gpus, node.model.name) for node in nodes] == [
        ("sim-node-0", 0, 1, "T4"),
        ("sim-node-1", 0, 1, "T4"),
        ("sim-node-2", 1, 2, "L4"),
        ("sim-node-3", 2, 8, "H100-80GB"),
    ]
