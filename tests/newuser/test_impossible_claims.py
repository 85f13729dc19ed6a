"""Issue 10, point 3: a claim no node could ever hold is refused at once (exit 2 / HTTP 422) with
the nearest claim that fits; a claim that only does not fit *now* still waits, and `--wait`,
`--timeout` and `Client.claim(wait=...)` wait for it. The README's SDK snippet works on a busy pool.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupool.devices import SimulatedBackend
from gpupool.model import ClaimSpec, ClaimState, GiB, Tenant
from gpupool.pool import PoolService
from gpupool.scheduler import make_placer
from gpupool.store import Store
from runctl import claims, cli_env, gpupool
from serverctl import ServerProcess

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ("--gpus", "5"),
            "gpus: no node has 5 GPUs, so this claim could never bind; the most on one node is 4 "
            "(sim-node-0, H100-80GB): ask for at most 4 per claim",
        ),
        (
            ("--memory", "80GiB"),
            "memory: no device has 80GiB (85.9GB), so this claim could never bind; the largest is "
            "H100-80GB with 79.6GiB (85.5GB): ask for at most 79.64GiB",
        ),
        (
            ("--model", "A100*"),
            "model: no device matches 'A100*', so this claim could never bind; this pool has H100-80GB",
        ),
    ],
    ids=["more-gpus-than-any-node", "more-memory-than-any-device", "model-not-in-the-pool"],
)
def test_a_claim_no_node_could_ever_hold_is_refused_with_the_nearest_fit(
    server: ServerProcess, args: tuple[str, ...], line: str
) -> None:
    started = time.monotonic()
    done = gpupool(server, "claim", *args, "--wait")
    assert done.returncode == 2, "refused, not left waiting forever"
    assert done.stderr == f"gpupool: error: {line}\n"
    assert time.monotonic() - started < 20
    assert claims(server) == [], "nothing was queued"


def test_the_nearest_fit_does_fit(server: ServerProcess) -> None:
    done = gpupool(server, "claim", "--memory", "79.64GiB", "--json")
    assert done.returncode == 0, done.stderr
    claim = json.loads(done.stdout)
    assert claim["state"] == "bound"
    gpupool(server, "release", claim["id"])


@pytest.fixture
def one_node_held(server: ServerProcess) -> Iterator[str]:
    """A whole node of the 2x4 pool held, so a 4-GPU claim fits only later, when it is released."""
    done = gpupool(server, "claim", "--gpus", "4", "-q")
    assert done.returncode == 0, done.stderr
    other = gpupool(server, "claim", "--memory", "1GiB", "-q")  # and a slice on the other node
    assert other.returncode == 0, other.stderr
    yield done.stdout.strip()
    for claim_id in (done.stdout.strip(), other.stdout.strip()):
        gpupool(server, "release", claim_id)


def test_a_claim_that_does_not_fit_now_waits(server: ServerProcess, one_node_held: str) -> None:
    done = gpupool(server, "claim", "--gpus", "4")
    assert done.returncode == 0, done.stderr
    claim_id = done.stdout.split()[1]
    assert f"claim {claim_id} pending #1: no node with 4 devices" in done.stdout
    gpupool(server, "release", claim_id)


def test_wait_timeout_gives_up_and_releases(server: ServerProcess, one_node_held: str) -> None:
    started = time.monotonic()
    done = gpupool(server, "claim", "--gpus", "4", "--wait", "--timeout", "1.5")
    assert done.returncode == 2
    assert time.monotonic() - started >= 1.5
    match = re.search(r"claim (c-[0-9a-f]{12}) was not bound within 1.5s \((.+)\); released it", done.stderr)
    assert match, done.stderr
    assert match.group(1) not in {c["id"] for c in claims(server)}, "nothing left waiting"
    with server.client() as http:
        assert http.get(f"/v1/claims/{match.group(1)}").json()["state"] == "released"


def test_wait_returns_once_the_claim_is_bound(server: ServerProcess, one_node_held: str) -> None:
    waiter = subprocess.Popen(
        [sys.executable, "-m", "gpupool", "claim", "--gpus", "4", "--wait", "--json"],
        env=cli_env(server),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)
        assert waiter.poll() is None, "still waiting while the node is held"
        gpupool(server, "release", one_node_held)
        out, err = waiter.communicate(timeout=30)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    claim = json.loads(out)
    gpupool(server, "release", claim["id"])
    assert claim["state"] == "bound" and len(claim["bindings"]) == 4
    assert f"gpupool: claim {claim['id']} pending #1: no node with 4 devices" in err, "it said why"


def _readme_sdk_snippet() -> str:
    blocks = re.findall(r"^```python\n(.*?)^```$", README.read_text(), re.MULTILINE | re.DOTALL)
    [snippet] = [block for block in blocks if "gpupool.Client()" in block]
    return snippet


def test_the_readme_sdk_snippet_works_on_a_busy_pool(server: ServerProcess) -> None:
    holders = [gpupool(server, "claim", "--gpus", "4", "-q").stdout.strip() for _ in range(2)]
    assert all(holders), "the whole pool is held"

    def free_a_node() -> None:
        time.sleep(2)
        gpupool(server, "release", holders[0])

    freer = threading.Thread(target=free_a_node)
    freer.start()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _readme_sdk_snippet()],
            env=cli_env(server),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        freer.join()
        gpupool(server, "release", holders[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("GPU-"), "the environment of a bound claim, no KeyError"


def test_cluster_mode_lets_an_impossible_claim_wait_and_says_why(tmp_path: Path) -> None:
    """Where nodes join later (Ray), the inventory now does not bound what may come."""
    pool = PoolService(
        Store(tmp_path / "pool.db"), SimulatedBackend("1x2xL4"), make_placer(), fixed_inventory=False
    )
    pool.start()
    claim = pool.create_claim(Tenant("admin"), ClaimSpec(gpus=4, memory_bytes=GiB))
    assert claim.state == ClaimState.PENDING
    assert claim.reason == (
        "no node has 4 GPUs with 1GiB each yet (the most on one node is 2 (sim-node-0, L4)); "
        "waiting for a node that can hold it to join"
    )
    pool.schedule()
    assert pool.store.get_claim(claim.id).reason == claim.reason, "a scheduling pass keeps saying so"
