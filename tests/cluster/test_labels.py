"""Node labels: the pool name of a Ray node and its simulated GPUs (no Ray needed)."""

from __future__ import annotations

import re

import pytest

from gpupool.cluster import NODE_LABEL, SIMULATE_LABEL, node_name, simulate_spec
from gpupool.cluster.node_devices import RenamedSimulatedBackend
from gpupool.errors import InvalidRequest


@pytest.mark.parametrize(
    ("labels", "expected"),
    [({NODE_LABEL: "gpu-01"}, "gpu-01"), ({}, "ray-abcdef01"), ({NODE_LABEL: "  "}, "ray-abcdef01")],
    ids=["label", "no-label", "blank-label"],
)
def test_node_name(labels: dict[str, str], expected: str) -> None:
    assert node_name("abcdef0123456789", labels) == expected


@pytest.mark.parametrize(
    ("value", "spec"),
    [("4xH100-80GB", "1x4xH100-80GB"), ("1x2xA100-40GB", "1x2xA100-40GB"), ("", None)],
    ids=["gpus-x-model", "one-node-spec", "absent"],
)
def test_simulate_spec(value: str, spec: str | None) -> None:
    assert simulate_spec({SIMULATE_LABEL: value} if value else {}) == spec


@pytest.mark.parametrize(
    "value", ["2x4xH100-80GB", "4xNoSuchGPU", "H100"], ids=["two-nodes", "model", "form"]
)
def test_bad_simulate_label_names_the_label(value: str) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(SIMULATE_LABEL)):
        simulate_spec({SIMULATE_LABEL: value})


def test_simulated_devices_take_the_node_name_and_distinct_uuids() -> None:
    a, b = RenamedSimulatedBackend("1x2xH100-80GB", "a"), RenamedSimulatedBackend("1x2xH100-80GB", "b")
    assert {d.node for d in a.devices()} == {"a"}
    assert not {d.uuid for d in a.devices()} & {d.uuid for d in b.devices()}
    assert [d.uuid for d in a.devices()] == [
        d.uuid for d in RenamedSimulatedBackend("1x2xH100-80GB", "a").devices()
    ]
    first = a.devices()[0].uuid
    a.note_allocations({first: (10 << 30, 50)})
    sample = {t.uuid: t for t in a.telemetry()}
    assert sample[first].memory_used_bytes > 0 and set(sample) == {d.uuid for d in a.devices()}
