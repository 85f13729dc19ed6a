"""Fixtures for the device backend tests: a fixed clock and a fake NVML host."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from devices_helpers import FakeClock
from fake_pynvml import FakeGpu, FakeNvml, mixed_host


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    """The mixed host installed as `pynvml`."""
    fake = FakeNvml(mixed_host())
    fake.install(monkeypatch)
    return fake


@pytest.fixture
def install_nvml(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FakeNvml]:
    """Install a fake host of your own: `install_nvml(gpus, init_error=None)`."""

    def install(gpus: list[FakeGpu], init_error: str | None = None) -> FakeNvml:
        fake = FakeNvml(gpus, init_error=init_error)
        fake.install(monkeypatch)
        return fake

    return install
