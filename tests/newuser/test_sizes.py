"""Issue 10, point 2: one rule for sizes, driven through the CLI and REST as a user would. A number
without a unit is refused; binary and decimal units mean what the docs say and every answer echoes
the size both ways; each error names its field once."""

from __future__ import annotations

import pytest

from runctl import gpupool
from serverctl import ServerProcess

GiB = 1024**3


@pytest.mark.parametrize(
    ("typed", "echoed", "exact"),
    [
        ("10GiB", "10GiB (10.7GB)", 10 * GiB),
        ("10gi", "10GiB (10.7GB)", 10 * GiB),
        ("10G", "9.3GiB (10GB)", 10**10),
        ("10gb", "9.3GiB (10GB)", 10**10),
        ("10GB", "9.3GiB (10GB)", 10**10),
        ("1536MiB", "1.5GiB (1.6GB)", 1536 * 1024**2),
    ],
)
def test_a_size_means_what_the_docs_say_and_the_answer_shows_it_both_ways(
    server: ServerProcess, typed: str, echoed: str, exact: int
) -> None:
    done = gpupool(server, "claim", "--memory", typed, "--compute", "10")
    assert done.returncode == 0, done.stderr
    claim_id = done.stdout.split()[1]
    try:
        assert f"asks for 1 vGPU of {echoed}, 10% compute" in done.stdout
        assert f" {echoed} 10%" in done.stdout, "the binding says it too"
        assert f"GPUPOOL_MEMORY_LIMIT_BYTES={exact}" in done.stdout
    finally:
        gpupool(server, "release", claim_id)


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (("--memory", "10"), "memory: '10' has no unit: write 10GiB (binary) or 10GB (decimal)"),
        (("--memory", "0.5"), "memory: '0.5' has no unit: write 0.5GiB (binary) or 0.5GB (decimal)"),
        (("--memory", "-1GiB"), "memory: must be greater than zero, got '-1GiB'"),
        (("--memory", "ten"), "memory: cannot parse size 'ten' (use e.g. '10GiB', '512MiB' or '10GB')"),
        (("--memory", "512KiB"), "memory: 524288 bytes is less than 1MiB"),
        (("--compute", "300"), "compute: must be a whole percentage between 1 and 100, got 300"),
    ],
    ids=["unitless", "unitless-fraction", "negative", "word", "under-1mib", "compute"],
)
def test_bad_sizes_are_one_line_with_one_field_prefix(
    server: ServerProcess, args: tuple[str, ...], line: str
) -> None:
    done = gpupool(server, "claim", *args)
    assert done.returncode == 2
    assert done.stderr.startswith(f"gpupool: error: {line}")
    assert len(done.stderr.splitlines()) == 1
    field = line.split(":", 1)[0]
    assert done.stderr.count(f"{field}:") == 1, "the field is named once, not `memory: memory:`"


def test_rest_counts_an_integer_as_bytes_and_refuses_a_byte_count_no_vgpu_can_have(
    server: ServerProcess,
) -> None:
    with server.client() as http:
        tiny = http.post("/v1/claims", json={"memory": 10})
        assert tiny.status_code == 422
        assert tiny.json()["detail"] == (
            "memory: 10 bytes is less than 1MiB, the smallest vGPU memory limit "
            "(a number without a unit is bytes: did you mean '10GiB'?)"
        )
        unitless = http.post("/v1/claims", json={"memory": "10"})
        assert unitless.status_code == 422
        assert unitless.json()["detail"].startswith("memory: '10' has no unit")
        exact = http.post("/v1/claims", json={"memory": 10 * GiB, "compute": 5})
        assert exact.status_code == 201 and exact.json()["memory_bytes"] == 10 * GiB
        http.delete(f"/v1/claims/{exact.json()['id']}")
