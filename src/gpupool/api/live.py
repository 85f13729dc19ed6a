"""The live hub: notices pool changes (new audit events, from any process) and samples utilization
into a short history, and wakes the dashboard streams. One per app; runs as a background task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from gpupool.api.device_cards import Card, DeviceCards
from gpupool.errors import TooManyRequests
from gpupool.model import DeviceTelemetry
from gpupool.pool import PoolService

log = logging.getLogger("gpupool.live")

POLL_INTERVAL_S = 0.25
"""How often the event log is checked for changes (seconds): bounds the dashboard's delay."""
SAMPLE_INTERVAL_S = 2.0
"""Seconds between two utilization samples (and periodic refreshes of the streams)."""
HISTORY_SAMPLES = 150
"""Samples kept per device: 150 x 2 s = the last 5 minutes."""
MAX_STREAMS_PER_TENANT = 4
"""Open dashboard streams one tenant (or the admin) may hold: each costs the server a snapshot per
change, so one tenant must not be able to starve the others by opening hundreds."""


class LiveHub:
    def __init__(
        self,
        pool: PoolService,
        poll_interval_s: float = POLL_INTERVAL_S,
        sample_interval_s: float = SAMPLE_INTERVAL_S,
        history_samples: int = HISTORY_SAMPLES,
    ) -> None:
        self.pool = pool
        self.max_streams_per_tenant = MAX_STREAMS_PER_TENANT
        self.poll_interval_s = poll_interval_s
        self.sample_interval_s = sample_interval_s
        self.history: dict[str, deque[float]] = {d.uuid: deque(maxlen=history_samples) for d in pool.devices}
        self.sample_id = 0
        # The last sample, by device UUID, with its number: what the overviews show until the next.
        self.latest: tuple[int, dict[str, DeviceTelemetry]] = (0, {})
        self.cards = DeviceCards(pool)  # shared by every stream and overview of this app
        self.last_event_id = 0
        self._subscribers: dict[asyncio.Queue[str], str] = {}  # queue -> its tenant

    # ------------------------------------------------------------ subscribers
    def streams_of(self, tenant: str) -> int:
        return sum(1 for owner in self._subscribers.values() if owner == tenant)

    def check_capacity(self, tenant: str) -> None:
        """TooManyRequests when `tenant` already holds its share of open streams."""
        if self.streams_of(tenant) >= self.max_streams_per_tenant:
            raise TooManyRequests(
                f"stream: {tenant} already has {self.max_streams_per_tenant} open event streams; "
                "close a dashboard tab first"
            )

    def subscribe(self, tenant: str) -> asyncio.Queue[str]:
        """A queue that receives `change` or `sample` whenever there is something new to draw."""
        self.check_capacity(tenant)
        queue: asyncio.Queue[str] = asyncio.Queue(maxsize=8)
        self._subscribers[queue] = tenant
        return queue

    def unsubscribe(self, queue: asyncio.Queue[str]) -> None:
        self._subscribers.pop(queue, None)

    def _notify(self, kind: str) -> None:
        for queue in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):  # a slow reader coalesces wake-ups
                queue.put_nowait(kind)

    def history_lists(self) -> dict[str, list[float]]:
        return {uuid: list(values) for uuid, values in self.history.items()}

    # ------------------------------------------------------------------- loop
    async def run(self) -> None:
        """Poll for changes and sample utilization until cancelled; one failure never ends it."""
        self.last_event_id = await asyncio.to_thread(self.pool.store.last_event_id)
        await asyncio.to_thread(self._sample)
        loop = asyncio.get_running_loop()
        next_sample = loop.time() + self.sample_interval_s
        while True:
            await asyncio.sleep(self.poll_interval_s)
            try:
                if await asyncio.to_thread(self._poll_events):
                    self._notify("change")
                if loop.time() >= next_sample:
                    next_sample = loop.time() + self.sample_interval_s
                    await asyncio.to_thread(self._sample)
                    self._notify("sample")
            except Exception:
                log.exception("live hub pass failed")

    def _poll_events(self) -> bool:
        # Only whether anything happened: one indexed max(), not the events themselves.
        newest = self.pool.store.last_event_id()
        changed = newest != self.last_event_id
        self.last_event_id = newest
        return changed

    def _sample(self) -> None:
        samples = self.pool.sample_telemetry()
        for sample in samples.values():
            series = self.history.get(sample.uuid)
            if series is not None and sample.utilization_percent is not None:  # N/A: no point
                series.append(round(sample.utilization_percent, 1))
        self.sample_id += 1
        self.latest = (self.sample_id, samples)

    def device_cards(self) -> list[Card]:
        """Every device's card (shared: do not modify) with the last sample's telemetry; a sample
        of its own before the hub's first."""
        sample_id, telemetry = self.latest
        if not sample_id:
            return self.cards.cards(self.pool.sample_telemetry(), None)
        return self.cards.cards(telemetry, sample_id)
