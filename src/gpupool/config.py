"""Where gpupool keeps its files (the client config `serve` writes is in `client_config`).

`GPUPOOL_HOME` puts everything under one folder (tests, containers); otherwise the platform's
user data and config dirs are used.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DEFAULT_PORT = 7070


def data_dir() -> Path:
    home = os.environ.get("GPUPOOL_HOME")
    path = Path(home) / "data" if home else Path(platformdirs.user_data_dir("gpupool"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    home = os.environ.get("GPUPOOL_HOME")
    path = Path(home) / "config" if home else Path(platformdirs.user_config_dir("gpupool"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only (0600 from the first byte)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
