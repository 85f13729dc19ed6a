"""GPU processes that belong to no claim: reported once (event and gauge), killed only when the
admin asked for it; a claim's own processes are not reported. NVML through the fake pynvml."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gpupool.agent import AgentOptions, MpsMode, NodeAgent
from gpupool.api.agent_metrics import AgentCollector
from gpupool.devices import NvmlBackend
from gpupool.model import ClaimSpec, Tenant
from gpupool.pool import PoolService
from gpupool.scheduler import make_placer
from gpupool.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "devices"))
from fake_pynvml import H100_MEMORY, H100_NAME, FakeGpu, FakeNvml, GiB


@pytest.fixture
def stray() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def _agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pids: list[int], kill: bool) -> NodeAgent:
    gpu = FakeGpu("GPU-aa", H100_NAME, bus=1, memory_total=H100_MEMORY, sm_count=132)
    gpu.processes = [(pid, GiB) for pid in pids]
    FakeNvml([gpu]).install(monkeypatch)
    pool = PoolService(Store(tmp_path / "pool.db"), NvmlBackend(node_name="n"), make_placer())
    pool.start()
    options = AgentOptions(
        state_dir=tmp_path / "state", kill_unclaimed=kill, watchdog_grace_s=0.0, mps=MpsMode.OFF
    )
    return NodeAgent(pool, options)


def test_an_unclaimed_process_is_reported_once_and_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stray: subprocess.Popen[bytes]
) -> None:
    agent = _agent(tmp_path, monkeypatch, [stray.pid], kill=False)
    for now in (1.0, 2.0, 3.0):
        agent.telemetry.sample(now)
        agent.memory.enforce(now)
    reports = [e for e in agent.pool.store.list_events() if e.action == "agent.unclaimed_process"]
    assert [(e.details["pid"], e.details["device"], e.details["killed"]) for e in reports] == [
        (stray.pid, "GPU-aa", False)
    ]
    assert agent.memory.unclaimed_by_device == {"GPU-aa": 1}
    [family] = AgentCollector(agent).collect()
    assert [(s.labels["UUID"], s.value) for s in family.samples] == [("GPU-aa", 1)]
    assert stray.poll() is None, "reporting only: the admin did not ask to kill"


def test_kill_unclaimed_stops_it_but_not_a_claims_own_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stray: subprocess.Popen[bytes]
) -> None:
    agent = _agent(tmp_path, monkeypatch, [stray.pid], kill=True)
    claim = agent.pool.create_claim(Tenant("admin"), ClaimSpec(gpus=1))
    _workload, env, _hints = agent.create_workload(Tenant("admin"), claim.id, ["sleep"], False, None, {})
    own = subprocess.Popen(["sleep", "60"], env=env)
    try:
        agent.update_workload(Tenant("admin"), claim.id, own.pid, None)
        fake_gpu = agent.pool.backend._handles["GPU-aa"]  # type: ignore[attr-defined]  # the FakeGpu
        fake_gpu.processes = [(stray.pid, GiB), (own.pid, GiB)]
        agent.telemetry.sample(time.time())
        agent.memory.enforce(time.time())
        assert stray.wait(timeout=5) < 0, "the stray process was stopped"
        assert own.poll() is None, "the claim's own process is not unclaimed"
        assert agent.processes(claim.id) == [(own.pid, "GPU-aa", GiB)]
    finally:
        own.kill()
        own.wait()
