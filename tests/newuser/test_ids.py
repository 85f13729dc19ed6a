"""Issue 10, point 4: claim ids are never cut in an 80-column terminal, a unique prefix works
everywhere an id is taken (and an ambiguous one says which claims it matches), `top` fits 80
columns and prints one frame when stdout is not a terminal, and `ps` shows the compute a
memory-only claim was bound with."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from runctl import cli_env, gpupool, wait_for, workload_cmd
from serverctl import ServerProcess

NARROW = {"COLUMNS": "80"}


def narrow(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpupool", *args],
        env={**cli_env(server), **NARROW, "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def three_claims(server: ServerProcess) -> Iterator[list[str]]:
    with server.client() as http:  # made over REST: what is tried here is the CLI's view of them
        ids = [http.post("/v1/claims", json=body).json()["id"] for body in ({"memory": "10GiB"}, {"gpus": 4})]
        ids.append(http.post("/v1/claims", json={"gpus": 4}).json()["id"])  # no whole node left: waits
    yield ids
    with server.client() as http:
        for claim_id in reversed(ids):
            http.delete(f"/v1/claims/{claim_id}")


def test_ps_at_80_columns_shows_every_id_whole(server: ServerProcess, three_claims: list[str]) -> None:
    listed = narrow(server, "ps")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for claim_id in three_claims:
        assert any(claim_id in line for line in lines), f"{claim_id} is cut in:\n{listed.stdout}"
    assert "…" not in listed.stdout
    # The waiting claim's reason is under the table, after its whole id.
    assert f"{three_claims[2]}: no node with 4 devices of all memory and compute free" in listed.stdout


def test_ps_shows_the_compute_a_memory_only_claim_was_bound_with(
    server: ServerProcess, three_claims: list[str]
) -> None:
    listed = narrow(server, "ps")
    [row] = [line for line in listed.stdout.splitlines() if line.strip().startswith(three_claims[0])]
    assert re.search(r"bound\s+1\s+10GiB\s+13%", row), row
    assert "whole" not in row


def test_a_unique_prefix_works_everywhere_an_id_is_taken(server: ServerProcess) -> None:
    started = gpupool(server, "run", "--detach", "--memory", "1GiB", "--", *workload_cmd("--sleep", "60"))
    assert started.returncode == 0, started.stderr
    claim_id = started.stdout.strip()
    prefix = claim_id[:7]  # `c-` and five hex digits
    wait_for(lambda: "started" in gpupool(server, "logs", prefix).stdout, timeout=15)
    events = gpupool(server, "events", "--claim", prefix, "--json")
    assert events.returncode == 0 and claim_id in events.stdout
    stopped = gpupool(server, "stop", claim_id[2:9])  # also without the `c-`
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.startswith(f"{claim_id} ")
    held = gpupool(server, "claim", "--memory", "1GiB", "-q").stdout.strip()
    released = gpupool(server, "release", held[:8])
    assert released.returncode == 0 and released.stdout.strip() == f"{held} released"


def test_an_ambiguous_prefix_names_the_claims_it_matches(server: ServerProcess) -> None:
    with server.client() as http:
        made = [http.post("/v1/claims", json={"memory": "1GiB"}).json()["id"] for _ in range(20)]
    try:
        first_digits = [claim_id[2] for claim_id in made]
        digit = max(set(first_digits), key=first_digits.count)  # 20 claims, 16 digits: one repeats
        with server.client() as http:  # ended claims count too: `logs` and `events` take their ids
            matching = sorted(
                c["id"] for c in http.get("/v1/claims", params={"prefix": f"c-{digit}"}).json()["items"]
            )
        assert len(matching) >= 2 and set(matching) >= {c for c in made if c[2] == digit}
        done = gpupool(server, "release", f"c-{digit}")
        assert done.returncode == 2
        shown = ", ".join(matching[:4]) + (", ..." if len(matching) > 4 else "")
        assert done.stderr == (
            f"gpupool: error: claim: 'c-{digit}' is ambiguous: it starts {len(matching)} claim ids "
            f"({shown}); give more of it\n"
        )
        missing = gpupool(server, "release", "c-zzz")
        assert missing.returncode == 2 and "no claim id starts with 'c-zzz'" in missing.stderr
    finally:
        with server.client() as http:
            for claim_id in made:
                http.delete(f"/v1/claims/{claim_id}")


def test_top_fits_80_columns_and_prints_one_frame_to_a_pipe(
    server: ServerProcess, three_claims: list[str]
) -> None:
    done = narrow(server, "top")  # no --once: stdout is a pipe, so one frame and exit
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(line for line in lines if len(line) > 80)
    assert sum(1 for line in lines if line.startswith("sim-node-")) == 8
    for claim_id in three_claims:
        assert claim_id in done.stdout, f"{claim_id} is cut"
    assert "…" not in done.stdout
