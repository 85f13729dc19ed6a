"""The heartbeat thread of `gpupool run`: keeps a claim's lease alive while the command runs.

If this process dies (even by kill -9) the heartbeats stop and the server's agent reclaims the
claim once the lease TTL passes. The thread also notices when the server ended the claim (idle
reclaim, admin release) and calls `on_ended` once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from gpupool.client import Client
from gpupool.errors import GpupoolError, NotFound
from gpupool.model.workload_wire import LeasePublic

MIN_INTERVAL_S = 0.2


class LeaseKeeper:
    """Heartbeats every TTL/3 seconds on its own connection, from a daemon thread."""

    def __init__(self, url: str, token: str, claim_id: str, on_ended: Callable[[LeasePublic], None]) -> None:
        self.claim_id = claim_id
        self._client = Client(url=url, token=token, timeout_s=10.0)
        self._on_ended = on_ended
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: LeasePublic | None = None

    def start(self) -> LeaseKeeper:
        """Take the lease now (so a crash from here on is covered), then heartbeat in the background."""
        self.last = self._client.renew_lease(self.claim_id)
        self._thread = threading.Thread(target=self._beat, name="gpupool-lease", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._client.close()

    def _beat(self) -> None:
        ended = False
        while not self._stop.wait(self._interval_s()):
            try:
                self.last = self._client.renew_lease(self.claim_id)
            except NotFound:
                return
            except GpupoolError:
                continue  # server restarting or busy: try again next beat; the TTL is the limit
            if not ended and self.last.state not in ("pending", "bound"):
                ended = True
                self._on_ended(self.last)

    def _interval_s(self) -> float:
        ttl = self.last.ttl_s if self.last is not None else 3.0
        return max(MIN_INTERVAL_S, ttl / 3)
