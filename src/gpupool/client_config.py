"""The client config `gpupool serve` writes for its user: one entry per server, so a second server
(another port, another pool) never takes the first one's place.

`client.json` holds `{"default": URL, "servers": {URL: {"url", "token", "pool", "pid"}}}`. A server
adds its entry when it starts and removes it when it stops; it becomes the default only when the
default is not running. The CLI and SDK talk to the URL they are given (`--url`, GPUPOOL_URL), else
to the default if it runs, else to the one server that runs; they send a saved token only to the
server it was saved for. The one-entry file of earlier versions (`{"url", "token"}`) still reads.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gpupool.config import DEFAULT_PORT, config_dir

DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
PROBE_TIMEOUT_S = 0.3


@dataclass(frozen=True)
class ClientConfig:
    """Where a client connects, with which token, and which other servers run (for a notice)."""

    url: str
    token: str
    others: tuple[str, ...] = field(default_factory=tuple)


def client_config_path() -> Path:
    return config_dir() / "client.json"


def normal_url(url: str) -> str:
    """One spelling per server: no trailing slash, `localhost` as 127.0.0.1, lowercase host."""
    parts = urlsplit(url.strip().rstrip("/"))
    host = (parts.hostname or "").lower()
    host = "127.0.0.1" if host == "localhost" else host
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme or 'http'}://{host}{port}{parts.path}"


def is_running(url: str) -> bool:
    """Whether something listens at the server's address (a TCP connect, no request)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection(
            (parts.hostname or "127.0.0.1", parts.port or 80), timeout=PROBE_TIMEOUT_S
        ):
            return True
    except OSError:
        return False


def _read(path: Path) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"default": None, "servers": {}}
    if not isinstance(saved, dict):
        return {"default": None, "servers": {}}
    if "servers" not in saved and isinstance(saved.get("url"), str):  # the one-entry format
        url = normal_url(saved["url"])
        return {"default": url, "servers": {url: {"url": url, "token": str(saved.get("token", ""))}}}
    servers = saved.get("servers") if isinstance(saved.get("servers"), dict) else {}
    return {"default": saved.get("default"), "servers": servers}


@contextlib.contextmanager
def _locked() -> Iterator[Path]:
    """The config file, locked against another `serve` updating it at the same moment."""
    path = client_config_path()
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield path


def _write(path: Path, data: dict[str, Any]) -> None:
    """Replace the file atomically, readable by its owner only."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(data, indent=2) + "\n")
    os.replace(scratch, path)


@dataclass(frozen=True)
class Registration:
    """What `register_server` did: the file, and the running server that stays the default (if any)."""

    path: Path
    default_elsewhere: str | None


def register_server(url: str, token: str, pool: str = "") -> Registration:
    """Add (or refresh) this server's entry; make it the default unless another default runs."""
    url = normal_url(url)
    with _locked() as path:
        data = _read(path)
        data["servers"][url] = {"url": url, "token": token, "pool": pool, "pid": os.getpid()}
        current = data.get("default")
        keep = current if current and current != url and current in data["servers"] else None
        if keep is not None and not is_running(keep):
            keep = None
        data["default"] = keep or url
        _write(path, data)
    return Registration(path, keep)


def unregister_server(url: str) -> None:
    """Remove this process's entry (a later server on the URL may have replaced it: leave that)."""
    url = normal_url(url)
    with _locked() as path:
        data = _read(path)
        entry = data["servers"].get(url)
        if entry is None or entry.get("pid") != os.getpid():
            return
        del data["servers"][url]
        if data.get("default") == url:
            data["default"] = next((other for other in data["servers"] if is_running(other)), None)
        _write(path, data)


def load_client_config(url: str | None = None) -> ClientConfig:
    """URL and token for a client: `url` or GPUPOOL_URL, else the running default server, else the
    one running server; the token from GPUPOOL_TOKEN, else the one saved for that URL."""
    data = _read(client_config_path())
    servers: dict[str, dict[str, Any]] = data["servers"]
    chosen = url or os.environ.get("GPUPOOL_URL")
    others: tuple[str, ...] = ()
    if not chosen:
        running = [candidate for candidate in servers if is_running(candidate)]
        default = data.get("default")
        if default in running:
            chosen = default
        elif running:
            chosen = running[0]
        else:
            chosen = default or DEFAULT_URL
        others = tuple(candidate for candidate in running if candidate != chosen)
    entry = servers.get(normal_url(chosen), {})
    token = os.environ.get("GPUPOOL_TOKEN") or str(entry.get("token", ""))
    return ClientConfig(url=chosen.rstrip("/"), token=token, others=others)
