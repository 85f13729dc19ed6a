"""Choosing a backend: a spec means simulated; otherwise NVML, falling back to a simulated pool."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_pynvml import FakeNvml, mixed_host

import gpupool.devices
from gpupool.devices import DEFAULT_SIMULATED_SPEC, NVML_HINT, NvmlBackend, SimulatedBackend, open_backend
from gpupool.errors import InvalidRequest, NvmlUnavailable

SRC = Path(gpupool.devices.__file__).resolve().parents[2]  # the src/ folder


def test_a_spec_gives_a_simulated_pool_without_notice() -> None:
    backend, notice = open_backend("2x8xH100-80GB")
    assert isinstance(backend, SimulatedBackend)
    assert backend.spec == "2x8xH100-80GB"
    assert notice is None


def test_a_bad_spec_is_an_error_not_a_fallback() -> None:
    with pytest.raises(InvalidRequest):
        open_backend("2x8")


def test_nvml_with_gpus_is_used(fake_nvml: FakeNvml) -> None:
    backend, notice = open_backend(None, node_name="gpu-host")
    assert isinstance(backend, NvmlBackend)
    assert notice is None
    assert len(backend.devices()) == 5


@pytest.mark.parametrize(
    ("init_error", "reason"),
    [("LibraryNotFound", "LibraryNotFound"), ("DriverNotLoaded", "DriverNotLoaded")],
    ids=["no-library", "no-driver"],
)
def test_unavailable_nvml_falls_back_with_notice(
    install_nvml: Callable[..., FakeNvml], init_error: str, reason: str
) -> None:
    install_nvml(mixed_host(), init_error=init_error)
    backend, notice = open_backend(None)
    assert isinstance(backend, SimulatedBackend)
    assert backend.spec == DEFAULT_SIMULATED_SPEC == "1x4xH100-80GB"
    assert notice is not None and "\n" not in notice
    assert reason in notice and DEFAULT_SIMULATED_SPEC in notice and "simulated" in notice


def test_missing_binding_falls_back_with_notice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    backend, notice = open_backend(None)
    assert isinstance(backend, SimulatedBackend)
    assert notice is not None and "nvidia-ml-py" in notice


def test_zero_gpus_falls_back_and_shuts_nvml_down(install_nvml: Callable[..., FakeNvml]) -> None:
    fake = install_nvml([])
    backend, notice = open_backend(None)
    assert isinstance(backend, SimulatedBackend)
    assert notice is not None and "0 GPUs" in notice
    assert fake.shutdowns == 1 and not fake.initialized


def test_real_binding_on_a_host_without_driver_falls_back() -> None:
    """No fake here: the installed nvidia-ml-py against whatever this host has."""
    try:
        NvmlBackend().close()
    except NvmlUnavailable as exc:
        assert exc.hint == NVML_HINT
    else:
        pytest.skip("this host has a working NVML; the GPU tests cover it")
    backend, notice = open_backend(None)
    assert isinstance(backend, SimulatedBackend) and notice is not None


def test_public_names_exist() -> None:
    assert gpupool.devices.__all__ == sorted(gpupool.devices.__all__, key=lambda n: (not n.isupper(), n))
    missing = [name for name in gpupool.devices.__all__ if not hasattr(gpupool.devices, name)]
    assert missing == []


def test_importing_gpupool_does_not_need_nvml() -> None:
    code = (
        "import sys; sys.modules['pynvml'] = None\n"
        "import gpupool, gpupool.devices\n"
        "backend, notice = gpupool.devices.open_backend(None)\n"
        "print(type(backend).__name__, bool(notice))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SimulatedBackend", "True"]


def test_only_the_nvml_module_imports_the_binding() -> None:
    importers = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] in ("pynvml", "nvidia_smi") for name in names):
                importers.append(path.relative_to(SRC).as_posix())
    assert importers == ["gpupool/devices/nvml.py"]
