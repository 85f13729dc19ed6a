"""MPS control daemons driven through the recording stub; framework hints; MIG profiles."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from gpupool.errors import Forbidden, InvalidRequest
from gpupool.isolation import MpsManager, framework_hints
from gpupool.isolation.mig import create_instance
from gpupool.model import Binding, Claim, ClaimSpec, ClaimState, GiB
from gpupool.model.mig import instance_model, parse_profile, split_instance_model

STUB = Path(__file__).with_name("mps_stub.py")
UUID = "GPU-11111111-2222-3333-4444-555555555555"


@pytest.fixture
def mps(tmp_path: Path) -> MpsManager:
    control = tmp_path / "mps-control"
    control.write_text(f'#!/bin/sh\nexec {sys.executable} {STUB} "$@"\n')
    control.chmod(0o755)
    return MpsManager(tmp_path / "state", str(control))


def calls(mps: MpsManager) -> list[tuple[list[str], str]]:
    log = mps.directories(UUID)[0].parent / "stub.jsonl"
    return [(c["argv"], c["stdin"]) for c in map(json.loads, log.read_text().splitlines())]


def test_mps_start_check_fault_recover_stop(mps: MpsManager) -> None:
    env = mps.ensure(UUID)
    assert mps.ensure(UUID) == env, "started once"
    pipe = Path(env["CUDA_MPS_PIPE_DIRECTORY"])
    assert len(str(pipe / "control")) < 108, "fits a Unix socket path"
    assert mps.check(UUID) is None
    (pipe / "fault").touch()
    assert "FAULT" in (mps.check(UUID) or "")
    mps.recover(UUID)
    assert mps.check(UUID) is None
    mps.stop(UUID)
    assert mps.running() == []
    assert calls(mps) == [
        (["-d"], ""),
        ([], "get_server_list"),
        ([], "get_server_status 4242"),
        ([], "get_server_list"),
        ([], "get_server_status 4242"),
        ([], "quit"),
        (["-d"], ""),
        ([], "get_server_list"),
        ([], "get_server_status 4242"),
        ([], "quit"),
    ]


def test_dead_daemon_is_reported(mps: MpsManager) -> None:
    mps.ensure(UUID)
    (mps.directories(UUID)[0] / "control").unlink()
    assert "does not answer" in (mps.check(UUID) or "")


def _claim(*bindings: Binding) -> Claim:
    return Claim(id="c-1", tenant="t", spec=ClaimSpec(), state=ClaimState.BOUND, bindings=bindings)


def test_hints_only_for_fractions() -> None:
    whole = _claim(Binding(UUID, "n", 80 * GiB, 100, whole_device=True))
    assert framework_hints(whole, {UUID: 80 * GiB}) == {}
    half = framework_hints(_claim(Binding(UUID, "n", 40 * GiB, 50)), {UUID: 80 * GiB})
    assert half["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.475"
    assert half["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    assert half["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


def test_mig_profiles() -> None:
    assert parse_profile(" 1G.10GB ") == "1g.10gb"
    assert instance_model("H100-80GB", "3G.40GB") == "H100-80GB MIG 3g.40gb"
    assert split_instance_model("H100-80GB MIG 1g.10gb+me") == ("H100-80GB", "1g.10gb+me")
    assert split_instance_model("H100-80GB") is None
    with pytest.raises(InvalidRequest, match="MIG profile"):
        parse_profile("half")
    with pytest.raises(Forbidden, match="--allow-mig-reconfig"):
        create_instance(0, "1g.10gb", allow_reconfig=False)
