"""Property-based fuzzing of the whole REST API from its own OpenAPI schema (schemathesis) with
every check: no server error, and the server does what its document says (statuses, bodies,
content types, headers, 405s with `Allow`, schema-valid input accepted, schema-invalid refused,
auth enforced). It fuzzes as an untrusted tenant first (`team-a`, then `team-b`; the two are
declared peers that must not see each other's objects) and falls back to the admin token only for
operations a tenant may not call. `schemathesis.toml` beside this file says which one check is
off where, and why."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from serverctl import ADMIN_TOKEN, ServerProcess

CONFIG = Path(__file__).with_name("schemathesis.toml")


def _schemathesis() -> str | None:
    found = Path(sys.executable).parent / "schemathesis"
    return str(found) if found.exists() else shutil.which("schemathesis")


def _identities(server: ServerProcess, tmp_path: Path) -> Path:
    """A Web Fuzzing Commons auth file: two tenants, then the admin."""
    tokens = {}
    with server.client() as admin:
        for name in ("fuzz-a", "fuzz-b"):
            tokens[name] = admin.post("/v1/tenants", json={"name": name}).json()["token"]
    tokens["admin"] = ADMIN_TOKEN
    entries = [
        {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {token}"}]}
        for name, token in tokens.items()
    ]
    path = tmp_path / "identities.json"
    path.write_text(json.dumps({"auth": entries}))
    return path


def test_the_server_does_what_its_openapi_document_says(server: ServerProcess, tmp_path: Path) -> None:
    binary = _schemathesis()
    if binary is None:
        pytest.skip("schemathesis not installed (it is in the [dev] extra)")
    identities = _identities(server, tmp_path)
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        CONFIG.read_text() + f'\n[auth.wfc]\npath = "{identities}"\npeers = ["fuzz-a", "fuzz-b"]\n'
    )
    result = subprocess.run(
        [
            binary, "--config-file", str(config), "run", f"{server.url}/openapi.json",
            "--max-examples", "25",
            "--seed", "7",
            "--request-timeout", "30",
        ],
        capture_output=True,
        text=True,
        timeout=400,
        cwd=tmp_path,  # schemathesis keeps a cache folder in its working directory
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:]
    assert "passed" in result.stdout
