"""Shared output helpers: Rich tables for people, JSON for scripts, one-line errors."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import typer
from pydantic import BaseModel
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

EXIT_USAGE = 2


def fail(message: str) -> NoReturn:
    """Print one line on stderr and exit with code 2 (no traceback)."""
    sys.stderr.write(f"gpupool: error: {message}\n")
    raise typer.Exit(EXIT_USAGE)


def print_json(data: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    if isinstance(data, BaseModel):
        payload: Any = data.model_dump(mode="json")
    elif isinstance(data, dict):
        payload = data
    else:
        payload = [item.model_dump(mode="json") for item in data]
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


def ago(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    seconds = max(0.0, dt.datetime.now().timestamp() - timestamp)
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def clock(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def short_clock(timestamp: float) -> str:
    """`14:31:59` today, `12-01 14:31` on another day: the time column of narrow tables."""
    moment = dt.datetime.fromtimestamp(timestamp)
    return moment.strftime("%H:%M:%S" if moment.date() == dt.date.today() else "%m-%d %H:%M")
