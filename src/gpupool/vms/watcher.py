"""Reconcile when libvirt says a domain changed (undefined, stopped, redefined, reconnected), when a
VM claim ended elsewhere (checked every 2 s), and every `resync_s` seconds in case an event was
missed (level-triggered: events only wake it up)."""

from __future__ import annotations

import logging
import threading
import time

from gpupool.devices.libvirt_host import RECONNECTED, DomainEvent, LibvirtHost
from gpupool.vms.reconcile import Reconciler

log = logging.getLogger("gpupool.vms")

RESYNC_S = 30.0
CHECK_S = 2.0  # how often the store is asked whether a VM claim ended elsewhere
WAKING_EVENTS = frozenset({"defined", "undefined", "stopped", "crashed", RECONNECTED})


class VmWatcher:
    def __init__(self, reconciler: Reconciler, domains: LibvirtHost, resync_s: float = RESYNC_S) -> None:
        self.reconciler = reconciler
        self.domains = domains
        self.resync_s = resync_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0  # reconcile passes run (tests wait on it)

    def start(self) -> None:
        self.domains.on_domain_event(self._on_event)
        self._thread = threading.Thread(target=self._run, name="gpupool-vms", daemon=True)
        self._thread.start()

    def _on_event(self, event: DomainEvent) -> None:
        # libvirt's event thread: only wake the worker, never call libvirt from here.
        if event.kind in WAKING_EVENTS:
            log.info("domain %s %s: reconciling", event.name or "*", event.kind)
            self._wake.set()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            woken = self._wake.wait(min(CHECK_S, self.resync_s))
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                due = woken or time.monotonic() - last >= self.resync_s or self.reconciler.stale()
                if not due:
                    continue
                last = time.monotonic()
                self.reconciler.run()
            except Exception:  # the watcher must outlive one bad pass; the error is logged
                log.exception("VM reconcile failed")
            self.passes += 1

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
