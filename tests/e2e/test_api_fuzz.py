"""Property-based fuzzing of the whole REST API from its own OpenAPI schema (schemathesis): no
input, however odd, may produce a server error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from serverctl import ADMIN_TOKEN, ServerProcess


def _schemathesis() -> str | None:
    found = Path(sys.executable).parent / "schemathesis"
    return str(found) if found.exists() else shutil.which("schemathesis")


def test_no_request_gets_a_server_error(server: ServerProcess, tmp_path: Path) -> None:
    binary = _schemathesis()
    if binary is None:
        pytest.skip("schemathesis not installed (it is in the [dev] extra)")
    result = subprocess.run(
        [
            binary, "run", f"{server.url}/openapi.json",
            "--header", f"Authorization: Bearer {ADMIN_TOKEN}",
            "--checks", "not_a_server_error",
            "--exclude-path", "/v1/stream",  # an endless event stream, not a request/response
            "--max-examples", "25",
            "--seed", "7",
            "--request-timeout", "30",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,  # schemathesis keeps a cache folder in its working directory
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:]
    assert "passed" in result.stdout
