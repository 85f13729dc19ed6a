"""The CLI against a real server: second-terminal use through the config `serve` wrote, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serverctl import ServerProcess


def gpupool(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gpupool", *args], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory: pytest.TempPathFactory) -> ServerProcess:
    home = tmp_path_factory.mktemp("cli")
    server = ServerProcess(home=home).start()
    yield server  # type: ignore[misc]
    server.stop()


@pytest.fixture
def user_env(cli_server: ServerProcess) -> dict[str, str]:
    """A second terminal of the same user: no URL or token in the environment."""
    env = dict(os.environ)
    env["GPUPOOL_HOME"] = str(cli_server.home)
    for key in ("GPUPOOL_URL", "GPUPOOL_TOKEN", "GPUPOOL_ADMIN_TOKEN"):
        env.pop(key, None)
    env["COLUMNS"] = "200"
    return env


def test_second_terminal_claims_with_the_config_serve_wrote(
    cli_server: ServerProcess, user_env: dict[str, str]
) -> None:
    config = json.loads((cli_server.home / "config" / "client.json").read_text())
    assert config["default"] == cli_server.url
    assert config["servers"][cli_server.url]["token"] == "test-admin-token"
    assert oct((cli_server.home / "config" / "client.json").stat().st_mode & 0o777) == "0o600"

    claimed = gpupool("claim", "--memory", "10GiB", "--compute", "25", "--json", env=user_env)
    assert claimed.returncode == 0, claimed.stderr
    claim = json.loads(claimed.stdout)
    assert claim["state"] == "bound" and claim["env"]["CUDA_MPS_ACTIVE_THREAD_PERCENTAGE"] == "25"

    listed = gpupool("ps", env=user_env)
    assert claim["id"] in listed.stdout
    exports = gpupool("claim", "--memory", "1GiB", "--env", env=user_env)
    assert "export CUDA_VISIBLE_DEVICES=GPU-" in exports.stdout

    released = gpupool("release", claim["id"], env=user_env)
    assert released.returncode == 0 and "released" in released.stdout
    devices = json.loads(gpupool("devices", "--json", env=user_env).stdout)
    assert len(devices) == 8


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("claim", "--memory", "ten"), "memory"),
        (("claim", "--compute", "300"), "compute"),
        (("release", "c-nope"), "not found"),
        (("claim", "--gpus", "0"), "gpus"),
        (("claim", "--label", "novalue"), "KEY=VALUE"),
    ],
    ids=["bad-memory", "bad-compute", "unknown-claim", "zero-gpus", "bad-label"],
)
def test_errors_are_one_line_with_exit_code_2(
    user_env: dict[str, str], args: tuple[str, ...], needle: str
) -> None:
    result = gpupool(*args, env=user_env)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_token_and_no_server_are_clear(user_env: dict[str, str], tmp_path: Path) -> None:
    wrong = gpupool("ps", "--token", "nope", env=user_env)
    assert wrong.returncode == 2 and wrong.stderr.strip() == "gpupool: error: invalid token"
    nowhere = gpupool("ps", "--url", "http://127.0.0.1:9", env=user_env)
    assert nowhere.returncode == 2 and "cannot reach gpupool" in nowhere.stderr
    assert len(nowhere.stderr.strip().splitlines()) == 1


def test_serve_with_a_bad_spec_or_busy_port_says_so(cli_server: ServerProcess, tmp_path: Path) -> None:
    env = dict(os.environ, GPUPOOL_HOME=str(tmp_path))
    bad = gpupool("serve", "--simulate", "2xH100", "--db", str(tmp_path / "x.db"), env=env)
    assert bad.returncode == 2 and "NODESxGPUSxMODEL" in bad.stderr and "Traceback" not in bad.stderr
    started = time.monotonic()
    busy = gpupool("serve", "--simulate", "1x1xT4", "--port", str(cli_server.port), env=env)
    assert busy.returncode == 2 and "already in use" in busy.stderr
    assert time.monotonic() - started < 30


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--log-level", "loud"), "loud"),
        (("--policy", "nope"), "unknown policy"),
        (("--db", "/proc/nope/pool.db"), "db: cannot open /proc/nope/pool.db"),
        (("--db", "postgresql://someone:SECRET@127.0.0.1:1/x"), "someone:***@127.0.0.1:1/x"),
    ],
    ids=["bad-log-level", "unknown-policy", "unwritable-db", "unreachable-postgres"],
)
def test_serve_refuses_bad_options_in_one_line(tmp_path: Path, args: tuple[str, ...], needle: str) -> None:
    env = dict(os.environ, GPUPOOL_HOME=str(tmp_path))
    result = gpupool("serve", "--simulate", "1x1xT4", "--port", "1", *args, env=env)
    assert result.returncode == 2
    assert needle in result.stderr
    assert "SECRET" not in result.stderr and "Traceback" not in result.stderr


def test_ps_marks_a_claim_in_its_preemption_grace_period() -> None:
    from gpupool.cli.claims import _state_text
    from gpupool.model.wire import ClaimPublic

    fields = dict(
        id="c-1", tenant="t", reason="", gpus=1, memory_bytes=None, compute_percent=None, model=None,
        priority=0, preemptible=True, labels={}, bindings=[], env={}, created_at=0.0, updated_at=0.0,
    )  # fmt: skip
    draining = ClaimPublic(state="bound", preempt_deadline=time.time() + 5, **fields)  # type: ignore[arg-type]
    assert "preempting (stops by" in _state_text(draining)
    assert "preempting" not in _state_text(ClaimPublic(state="bound", **fields))  # type: ignore[arg-type]
