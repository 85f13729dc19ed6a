"""Fixtures of the VM tests: a private copy of the test VM host (libvirt's test driver)."""

from __future__ import annotations

from pathlib import Path

import pytest
from vmhost import VmTestHost, make_host


@pytest.fixture
def vm_host(tmp_path: Path) -> VmTestHost:
    pytest.importorskip("libvirt", reason="libvirt-python is missing: bash scripts/setup.sh --dev")
    return make_host(tmp_path / "vmhost")
