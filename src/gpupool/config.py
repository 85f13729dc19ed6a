"""Where gpupool keeps its files, and the client config that `serve` writes for its user.

`GPUPOOL_HOME` puts everything under one folder (tests, containers); otherwise the platform's
user data and config dirs are used.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ClientConfig:
    url: str
    token: str


def client_config_path() -> Path:
    return config_dir() / "client.json"


def save_client_config(config: ClientConfig) -> Path:
    path = client_config_path()
    write_private(path, json.dumps({"url": config.url, "token": config.token}, indent=2) + "\n")
    return path


def load_client_config() -> ClientConfig | None:
    """URL and token from GPUPOOL_URL / GPUPOOL_TOKEN, else from the file `serve` wrote."""
    saved: dict[str, str] = {}
    path = client_config_path()
    if path.exists():
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            saved = {}
    url = os.environ.get("GPUPOOL_URL") or saved.get("url") or f"http://127.0.0.1:{DEFAULT_PORT}"
    token = os.environ.get("GPUPOOL_TOKEN") or saved.get("token") or ""
    return ClientConfig(url=url.rstrip("/"), token=token)
