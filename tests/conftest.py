"""Shared fixtures: a real gpupool server on a loopback port, and a private GPUPOOL_HOME."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from serverctl import ServerProcess

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _private_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the user's real config or data dir from a test."""
    monkeypatch.setenv("GPUPOOL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GPUPOOL_URL", raising=False)
    monkeypatch.delenv("GPUPOOL_TOKEN", raising=False)
    monkeypatch.delenv("GPUPOOL_ADMIN_TOKEN", raising=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server per test module, on a 2x4 simulated H100 pool."""
    home = tmp_path_factory.mktemp("server")
    proc = ServerProcess(home=home).start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """One private PostgreSQL server for the session (skipped where it cannot start)."""
    from pgctl import start_postgres, unavailable_reason

    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    server = start_postgres()
    try:
        yield server
    finally:
        server.stop()


_db_counter = iter(range(1_000_000))


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database URL on each store backend."""
    if request.param == "sqlite":
        return str(tmp_path / "pool.db")
    server = request.getfixturevalue("postgres")
    return server.create_database(f"gpupool_test_{next(_db_counter)}")  # type: ignore[attr-defined, no-any-return]
