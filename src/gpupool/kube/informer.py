"""List-then-watch of one kind of object, with a periodic full list (client-go's informer, small).

`on_list` gets every object after each list (a full, level-triggered pass); `on_event` gets each
change seen by the watch in between. A watch whose resourceVersion expired (410) lists again at
once; other failures back off (1 s doubling to 10 s) and list again. A handler that raises is
logged and the loop lives on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from gpupool.kube.apiclient import KubeApi, KubeApiError

log = logging.getLogger("gpupool.kube")

WATCH_CHUNK_S = 10
"""Longest single watch request, in seconds (the loop checks for stop between requests)."""
BACKOFF_S = (1.0, 10.0)

Obj = dict[str, Any]


class Informer:
    def __init__(
        self,
        api: KubeApi,
        kind: str,
        on_list: Callable[[list[Obj]], None],
        on_event: Callable[[str, Obj], None],
        resync_s: float = 30.0,
    ) -> None:
        self.api = api
        self.kind = kind
        self.on_list = on_list
        self.on_event = on_event
        self.resync_s = resync_s
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"gpupool-kube-{kind}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        backoff = BACKOFF_S[0]
        while not self._stop.is_set():
            try:
                version = self._list()
                backoff = BACKOFF_S[0]
                self._watch_until_resync(version)
            except KubeApiError as exc:
                if exc.status == 410:
                    log.debug("%s watch expired; listing again", self.kind)
                    continue
                log.warning("%s informer: %s (retrying in %.0f s)", self.kind, exc.message, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_S[1])
            except Exception:
                log.exception("%s informer failed (retrying in %.0f s)", self.kind, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, BACKOFF_S[1])

    def _list(self) -> str:
        items, version = self.api.list_pods() if self.kind == "pods" else self.api.list_nodes()
        try:
            self.on_list(items)
        except Exception:
            log.exception("%s: handling the full list failed", self.kind)
        self.synced.set()
        return version

    def _watch_until_resync(self, version: str) -> None:
        resync_at = time.monotonic() + self.resync_s
        while not self._stop.is_set():
            left = resync_at - time.monotonic()
            if left <= 0:
                return
            for kind, obj in self.api.watch(self.kind, version, max(1, int(min(left, WATCH_CHUNK_S)))):
                version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
                if kind == "BOOKMARK":
                    continue
                try:
                    self.on_event(kind, obj)
                except Exception:
                    log.exception("%s: handling a %s event failed", self.kind, kind)
                if self._stop.is_set():
                    return
