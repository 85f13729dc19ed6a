"""`gpupool run` on a real NVIDIA GPU (skipped without one, or without torch with CUDA).

The full measurements (native speed, MPS vs time-slicing, quotas, telemetry) are in
benchmarks/gpu_check.py; these are the quick pass/fail checks of the same paths.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator

import pytest

from gpupool.devices import NvmlBackend
from gpupool.errors import NvmlUnavailable
from runctl import gpupool, kill_quietly, start_gpupool, wait_for
from serverctl import ServerProcess

pytestmark = pytest.mark.gpu


def _gpu_or_skip() -> None:
    try:
        backend = NvmlBackend()
    except NvmlUnavailable as exc:
        pytest.skip(f"no usable NVML: {exc.message}")
    found = backend.devices()
    backend.close()
    if not found:
        pytest.skip("NVML sees no GPU")
    try:
        import torch
    except ImportError:
        pytest.skip("torch is not installed")
    if not torch.cuda.is_available():
        pytest.skip("torch sees no CUDA device")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    _gpu_or_skip()
    args = ("--telemetry-interval", "0.5", "--watchdog", "kill", "--watchdog-grace", "2", "--mps", "off")
    proc = ServerProcess(home=tmp_path_factory.mktemp("gpu"), simulate="", extra_args=args).start(
        timeout_s=60
    )
    try:
        yield proc
    finally:
        proc.stop()


HOLD_1GIB = (
    "import time, torch; x = torch.ones(2**28, device='cuda'); torch.cuda.synchronize(); "
    "print(torch.cuda.device_count(), flush=True); time.sleep(4)"
)


def test_whole_gpu_run_sees_one_device_and_is_attributed(server: ServerProcess) -> None:
    proc = start_gpupool(server, "run", "--gpus", "1", "--", sys.executable, "-c", HOLD_1GIB)
    try:

        def attributed() -> list[dict[str, int]]:
            with server.client() as http:
                items = http.get("/v1/workloads").json()["items"]
            return [p for w in items if w["state"] == "running" for p in w["processes"]]

        processes = wait_for(attributed, timeout=30, interval=0.5)
        assert processes[0]["used_memory_bytes"] >= 2**30
        out, err = proc.communicate(timeout=60)
    finally:
        kill_quietly(proc)
    assert proc.returncode == 0, err
    assert out.strip() == "1"


def test_watchdog_stops_a_process_over_its_quota(server: ServerProcess) -> None:
    grab = (
        "import time, torch; x = torch.ones(2**30, device='cuda'); torch.cuda.synchronize(); time.sleep(60)"
    )
    done = gpupool(server, "run", "--memory", "2GiB", "--", sys.executable, "-c", grab, timeout=90)
    assert done.returncode in (128 + 15, 128 + 9), done.stderr


@pytest.mark.skipif(shutil.which("nvidia-cuda-mps-control") is None, reason="no nvidia-cuda-mps-control")
def test_mps_pinned_memory_limit_fails_an_allocation_past_the_quota(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    _gpu_or_skip()
    args = ("--mps", "on", "--watchdog", "off")
    mps_server = ServerProcess(home=tmp_path_factory.mktemp("mps"), simulate="", extra_args=args).start(
        timeout_s=60
    )
    try:
        probe = (
            "import torch\ntry:\n    torch.empty(6 * 2**30, dtype=torch.uint8, device='cuda')\n"
            "    print('allocated')\nexcept RuntimeError:\n    print('refused')\n"
        )
        done = gpupool(
            mps_server, "run", "--memory", "4GiB", "--compute", "50", "--", sys.executable, "-c", probe
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "refused"
    finally:
        mps_server.stop()
