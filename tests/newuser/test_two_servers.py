"""Issue 10, point 5: the README's "bigger pool" as a user runs it, beside a first server of the same
user (same GPUPOOL_HOME, default stores, no --url): the second server gets a store of its own,
neither sees the other's claims, the client config keeps both servers, the CLI stays on the first
and says which server it talks to, and goes back to one server when the other stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from serverctl import ServerProcess

BIGGER = "2x8xH100-80GB,1x4xA100-40GB"


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A terminal of the same user: no URL or token in the environment, only the config file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPOOL_")}
    env.update(GPUPOOL_HOME=str(home), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "gpupool", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


@pytest.fixture
def first(home: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(home=home, simulate="1x4xH100-80GB", default_store=True).start()
    try:
        yield server
    finally:
        server.stop()


def test_a_bigger_pool_beside_the_first_never_shares_its_store(home: Path, first: ServerProcess) -> None:
    assert cli(home, "claim", "--gpus", "2", "-q").returncode == 0  # on the first server
    second = ServerProcess(home=home, simulate=BIGGER, default_store=True).start()
    try:
        banner = second.log_text()
        own_store = home / "data" / "gpupool-simulated-2x8xH100-80GB_1x4xA100-40GB.db"
        assert f"keeps its own: {own_store}" in banner
        assert f"The CLI's default stays {first.url} (still running)" in banner
        assert f"--url {second.url}" in banner

        eight = cli(home, "claim", "--url", second.url, "--gpus", "8", "--json")
        assert eight.returncode == 0, eight.stderr
        assert json.loads(eight.stdout)["state"] == "bound"
        second_devices = json.loads(cli(home, "devices", "--url", second.url, "--json").stdout)
        assert len(second_devices) == 20
        busy = [d for d in second_devices if d["claims"]]
        assert len(busy) == 8, "only the 8 GPUs of its own claim are allocated there"

        first_devices = json.loads(cli(home, "devices", "--json").stdout)
        assert len(first_devices) == 4 and sum(1 for d in first_devices if d["claims"]) == 2
        first_claims = json.loads(cli(home, "ps", "--json").stdout)
        assert {b["node"] for c in first_claims for b in c["bindings"]} == {"sim-node-0"}
        assert all(c["gpus"] == 2 for c in first_claims), "the first server lists only its own claims"

        talked = cli(home, "ps")
        assert talked.returncode == 0
        assert talked.stderr == (
            f"gpupool: talking to {first.url} (also running: {second.url}; pick one with --url)\n"
        )
        config = json.loads((home / "config" / "client.json").read_text())
        assert config["default"] == first.url and set(config["servers"]) == {first.url, second.url}
    finally:
        second.stop()
    config = json.loads((home / "config" / "client.json").read_text())
    assert set(config["servers"]) == {first.url}, "a stopped server takes its entry with it"
    alone = cli(home, "ps")
    assert alone.returncode == 0 and alone.stderr == "", "one server: nothing to say"


def test_the_cli_goes_back_to_the_first_server_when_the_newer_default_stops(home: Path) -> None:
    second = ServerProcess(home=home, simulate=BIGGER, default_store=True).start()
    first = ServerProcess(home=home, simulate="1x4xH100-80GB", default_store=True)
    try:
        first.start()  # started second: the default stays on the running `second`
        assert json.loads((home / "config" / "client.json").read_text())["default"] == second.url
        second.stop()
        devices = cli(home, "devices", "--json")
        assert devices.returncode == 0, devices.stderr
        assert len(json.loads(devices.stdout)) == 4, "the CLI talks to the server that still runs"
    finally:
        first.stop()
        second.stop()


def test_an_explicit_store_of_another_pool_is_shared_with_a_notice(home: Path, first: ServerProcess) -> None:
    """A --db named on purpose is how replicas share a store: accepted, with a notice that says so."""
    store = home / "data" / "gpupool.db"
    shared = ServerProcess(home=home, simulate=BIGGER, db=str(store))
    try:
        shared.start()
        assert (
            f"db: {store} was first used by the pool simulated:1x4xH100-80GB; this server "
            f"(simulated:{BIGGER}) shares it" in shared.log_text()
        )
    finally:
        shared.stop()
