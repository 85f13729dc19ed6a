"""`gpupool top`: a live terminal view of the pool, like nvitop but for claims, tenants and the queue.

Devices with their memory and compute bars and a utilization sparkline, tenants against their
quota, the pending queue with its reasons, and the newest events; refreshed every second.
"""

from __future__ import annotations

import time
import zlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gpupool.cli.common import TokenOpt, UrlOpt, make_client
from gpupool.cli.output import ago, console
from gpupool.model import format_size
from gpupool.model.overview import DeviceCard, Overview, TenantRow

SPARK = "▁▂▃▄▅▆▇█"
SPARK_POINTS = 20
BAR_WIDTH = 16
CLAIM_ID_WIDTH = 14  # `c-` + 12 hex digits: claim ids are never cut, other columns give way
PALETTE = (
    "green",
    "magenta",
    "yellow",
    "cyan",
    "bright_red",
    "bright_green",
    "bright_magenta",
    "orange3",
    "purple",
    "dark_cyan",
    "gold3",
    "deep_pink3",
)


def top(
    once: Annotated[bool, typer.Option("--once", help="print one frame and exit")] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.2, help="seconds between frames")] = 1.0,
    url: UrlOpt = None,
    token: TokenOpt = None,
) -> None:
    """Watch the pool live: devices, claims, tenants, the queue and events (Ctrl-C to quit).

    When stdout is not a terminal (a pipe, a file) it prints one frame and exits, like --once."""
    history: dict[str, deque[float]] = {}
    with make_client(url, token) as client:
        snapshot = client.overview(history=True)
        _remember(history, snapshot, seed=True)
        if once or not console.is_terminal:
            console.print(frame(snapshot, history, console.width))
            return
        with Live(frame(snapshot, history), console=console, screen=True, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                snapshot = client.overview()
                _remember(history, snapshot)
                live.update(frame(snapshot, history, console.width), refresh=True)


def _remember(history: dict[str, deque[float]], snapshot: Overview, seed: bool = False) -> None:
    if seed and snapshot.history:
        for uuid, values in snapshot.history.items():
            history[uuid] = deque(values[-SPARK_POINTS:], maxlen=SPARK_POINTS)
        return
    for device in snapshot.devices:
        series = history.setdefault(device.uuid, deque(maxlen=SPARK_POINTS))
        series.append(device.utilization_percent or 0.0)


@dataclass(frozen=True)
class Fit:
    """What the devices table shows at a terminal width: narrower terminals drop the sparkline,
    then shorten the bars, then drop the compute bar (its percent stays) and the model."""

    spark: bool = True
    bar_width: int = BAR_WIDTH
    compute_bar: bool = True
    model: bool = True

    @classmethod
    def for_width(cls, width: int) -> Fit:
        if width >= 150:
            return cls()
        if width >= 120:
            return cls(spark=False)
        if width >= 100:
            return cls(spark=False, bar_width=8)
        return cls(spark=False, bar_width=8, compute_bar=False, model=False)


def frame(snapshot: Overview, history: dict[str, deque[float]], width: int = 200) -> RenderableType:
    """One full screen for a terminal `width` columns wide: header, devices, tenants, queue, events."""
    slots = {t.name: t.colour for t in snapshot.tenants}
    return Group(
        _header(snapshot),
        _devices(snapshot, history, Fit.for_width(width), slots),
        _tenants(snapshot.tenants, slots),
        _queue(snapshot, slots),
        _events(snapshot),
    )


def tenant_style(name: str, slots: Mapping[str, int] | None = None) -> str:
    """A colour per tenant (the admin is blue, other tenants' shares grey). With the server's colour
    slots (rank by creation) no two of the first len(PALETTE) tenants share one; else a hash."""
    if name == "admin":
        return "bright_blue"
    if name == "other":
        return "grey50"
    slot = (slots or {}).get(name, -1)
    return PALETTE[(slot if slot >= 0 else zlib.crc32(name.encode())) % len(PALETTE)]


def _header(snapshot: Overview) -> Text:
    devices = snapshot.devices
    nodes = len({d.node for d in devices})
    bound = sum(d.compute_allocated_percent for d in devices) / 100
    memory_total = sum(d.memory_total_bytes for d in devices) or 1
    memory_bound = sum(d.memory_allocated_bytes for d in devices)
    utils = [d.utilization_percent for d in devices if d.utilization_percent is not None]
    text = Text()
    text.append(" gpupool ", style="bold black on green")
    text.append(
        f"  {nodes} nodes · {len(devices)} devices · {bound:.1f}/{len(devices)} GPUs of SMs bound · "
        f"{100 * memory_bound / memory_total:.0f}% memory bound · "
        f"{(sum(utils) / len(utils)) if utils else 0:.0f}% mean util · {snapshot.queue_length} pending"
    )
    text.append(f"   {snapshot.viewer} · {snapshot.backend} · {snapshot.policy}", style="dim")
    return text


def _bar(
    device: DeviceCard,
    field: str,
    total: float,
    width: int = BAR_WIDTH,
    slots: Mapping[str, int] | None = None,
) -> Text:
    """Segments per claim, coloured by tenant, on a fixed-width bar."""
    text = Text()
    used = 0
    for segment in device.segments:
        value = segment.memory_bytes if field == "memory" else segment.compute_percent
        cells = max(1, round(width * value / total)) if value else 0
        cells = min(cells, width - used)
        text.append("█" * cells, style=tenant_style(segment.tenant, slots))
        used += cells
    text.append("·" * (width - used), style="grey30")
    return text


def spark(values: deque[float] | list[float]) -> Text:
    """Utilization percents as one line of block characters, newest on the right."""
    cells = "".join(SPARK[min(len(SPARK) - 1, int(v / 100 * len(SPARK)))] for v in values)
    return Text(cells.rjust(SPARK_POINTS, " "), style="bright_blue")


def _devices(
    snapshot: Overview,
    history: dict[str, deque[float]],
    fit: Fit | None = None,
    slots: Mapping[str, int] | None = None,
) -> Table:
    fit = fit or Fit()
    table = Table(title="devices", title_justify="left", expand=False, pad_edge=False, box=None)
    columns: list[tuple[str, str]] = [("NODE/IDX", "left")]
    columns += [("MODEL", "left")] if fit.model else []
    columns += [("MEMORY", "left"), ("", "right")]
    columns += [("SM", "left")] if fit.compute_bar else []
    columns += [("SM" if not fit.compute_bar else "", "right"), ("UTIL", "right")]
    columns += [("LAST 20 SAMPLES", "left")] if fit.spark else []
    for column, justify in columns:
        table.add_column(column, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    table.add_column("CLAIMS", min_width=CLAIM_ID_WIDTH)  # wraps between ids, never inside one
    for d in sorted(snapshot.devices, key=lambda d: (_natural(d.node), d.index)):
        claims = Text()
        for segment in d.segments:
            claims.append(segment.claim_id or "other", style=tenant_style(segment.tenant, slots))
            claims.append(" ")
        row: list[RenderableType] = [f"{d.node}/{d.index}"]
        row += [d.model] if fit.model else []
        row += [
            _bar(d, "memory", d.memory_total_bytes, fit.bar_width, slots),
            f"{format_size(d.memory_allocated_bytes) if d.memory_allocated_bytes else '0'}"
            f"/{format_size(d.memory_total_bytes)}",
        ]
        row += [_bar(d, "compute", 100, fit.bar_width, slots)] if fit.compute_bar else []
        row += [
            f"{d.compute_allocated_percent}%",
            "-" if d.utilization_percent is None else f"{d.utilization_percent:.0f}%",
        ]
        row += [spark(history.get(d.uuid, deque()))] if fit.spark else []
        table.add_row(*row, claims)
    return table


def _tenants(rows: list[TenantRow], slots: Mapping[str, int] | None = None) -> Table:
    table = Table(title="tenants", title_justify="left", box=None, pad_edge=False)
    for column in ("TENANT", "ALLOCATED", "GUARANTEE", "LIMIT", "MEMORY", "BOUND", "PENDING"):
        table.add_column(column, justify="left" if column == "TENANT" else "right")
    for t in rows:
        over = t.guarantee_gpus is not None and t.allocated_gpus > t.guarantee_gpus + 1e-9
        table.add_row(
            Text(t.name, style=tenant_style(t.name, slots)),
            Text(f"{t.allocated_gpus:.2f} GPU", style="yellow" if over else ""),
            "-" if t.guarantee_gpus is None else f"{t.guarantee_gpus:g} GPU",
            "-" if t.limit_gpus is None else f"{t.limit_gpus:g} GPU",
            format_size(t.allocated_memory_bytes) if t.allocated_memory_bytes else "0",
            str(t.bound_claims),
            str(t.pending_claims),
        )
    return table


def _queue(snapshot: Overview, slots: Mapping[str, int] | None = None) -> RenderableType:
    if not snapshot.queue:
        return Text(f"queue: nothing waiting ({snapshot.queue_length} pending in all)", style="dim")
    table = Table(title="queue", title_justify="left", box=None, pad_edge=False)
    for column in ("#", "CLAIM", "TENANT", "ASKS", "PRIO", "WAITING", "WHY"):
        table.add_column(
            column, no_wrap=column == "CLAIM", min_width=CLAIM_ID_WIDTH if column == "CLAIM" else None
        )
    for claim in snapshot.queue:
        each = (
            "whole"
            if claim.memory_bytes is None and claim.compute_percent is None
            else "/".join(
                part
                for part in (
                    format_size(claim.memory_bytes) if claim.memory_bytes else "",
                    f"{claim.compute_percent}%" if claim.compute_percent else "",
                )
                if part
            )
        )
        why = claim.reason + (f" [quota: {claim.quota_reason}]" if claim.quota_reason else "")
        table.add_row(
            str(claim.queue_position or "?"),
            claim.id,
            Text(claim.tenant, style=tenant_style(claim.tenant, slots)),
            f"{claim.gpus}x {each}",
            str(claim.priority),
            ago(claim.created_at),
            why,
        )
    return table


def _events(snapshot: Overview, count: int = 8) -> Table:
    table = Table(title="events", title_justify="left", box=None, pad_edge=False)
    for column in ("TIME", "ACTION", "CLAIM", "TENANT", "BY"):
        table.add_column(
            column, no_wrap=column == "CLAIM", min_width=CLAIM_ID_WIDTH if column == "CLAIM" else None
        )
    for event in snapshot.events[-count:]:
        table.add_row(
            time.strftime("%H:%M:%S", time.localtime(event.timestamp)),
            event.action,
            event.claim_id or "-",
            event.tenant or "-",
            event.actor,
        )
    return table


def _natural(name: str) -> tuple[str, int]:
    """`node-2` before `node-10`."""
    stem = name.rstrip("0123456789")
    digits = name[len(stem) :]
    return stem, int(digits) if digits else -1
