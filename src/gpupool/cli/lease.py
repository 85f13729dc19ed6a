"""The heartbeat thread of `gpupool run`: keeps a claim's lease alive while the command runs.

If this process dies (even by kill -9) the heartbeats stop and the server's agent reclaims the
claim once the lease TTL passes. The thread also notices when the server ended the claim (idle
reclaim, admin release) and calls `on_ended` once, and when the claim is being preempted and calls
`on_preempting(deadline, reason)` once: between heartbeats it reads the claim every `CHECK_S`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gpupool.client import Client
from gpupool.errors import GpupoolError, NotFound
from gpupool.model.workload_wire import LeasePublic

MIN_INTERVAL_S = 0.2
CHECK_S = 1.0
"""Most seconds between two looks at the claim: a preemption's grace period is a few seconds."""


class LeaseKeeper:
    """Heartbeats every TTL/3 seconds on its own connection, from a daemon thread."""

    def __init__(
        self,
        url: str,
        token: str,
        claim_id: str,
        on_ended: Callable[[LeasePublic], None],
        on_preempting: Callable[[float, str], None] | None = None,
    ) -> None:
        self.claim_id = claim_id
        self._client = Client(url=url, token=token, timeout_s=10.0)
        self._on_ended = on_ended
        self._on_preempting = on_preempting
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
        ended = preempting = False
        renew_at = time.monotonic() + self._interval_s()
        while not self._stop.wait(min(CHECK_S, self._interval_s())):
            try:
                if time.monotonic() >= renew_at:
                    self.last = self._client.renew_lease(self.claim_id)
                    renew_at = time.monotonic() + self._interval_s()
                    state, reason, deadline = self.last.state, self.last.reason, self.last.preempt_deadline
                else:  # a cheap read between heartbeats
                    claim = self._client.get_claim(self.claim_id)
                    state, reason, deadline = claim.state, claim.reason, claim.preempt_deadline
            except NotFound:
                return
            except GpupoolError:
                continue  # server restarting or busy: try again next beat; the TTL is the limit
            if not preempting and deadline is not None and self._on_preempting is not None:
                preempting = True
                self._on_preempting(deadline, reason)
            if not ended and state not in ("pending", "bound") and self.last is not None:
                ended = True
                self._on_ended(self.last)

    def _interval_s(self) -> float:
        ttl = self.last.ttl_s if self.last is not None else 3.0
        return max(MIN_INTERVAL_S, ttl / 3)
