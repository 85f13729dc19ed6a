"""The membership watcher: nodes that join get an agent, dead ones are found fast and lost.

One background thread runs `sync_once` every `interval_s`. A node is declared dead when Ray's
node table says so (slow: Ray's own heartbeat timeout, ~15 s by default), when its agent actor
is reported gone, when its raylet port refuses connections after a missed ping, or when its agent
misses `max_ping_failures` pings in a row, each with a `ping_timeout_s` deadline (an actor call
to a dead node does not fail until Ray's timeout, so only a deadline finds it quickly).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from gpupool.cluster import handles
from gpupool.cluster.backend import NodeRecord, RayBackend
from gpupool.cluster.labels import node_name, simulate_spec
from gpupool.errors import InvalidRequest
from gpupool.pool import PoolService

log = logging.getLogger("gpupool.cluster")

ACTOR = "cluster"


def _refuses_connections(address: str, port: int, timeout_s: float = 0.3) -> bool:
    """True when nothing listens on address:port (the raylet process is gone)."""
    if port <= 0:
        return False
    try:
        with socket.create_connection((address, port), timeout=timeout_s):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False  # unreachable or slow: not proof of death, the pings decide


class MembershipWatcher:
    """Keeps `backend`'s node table in step with the Ray cluster and tells the pool."""

    def __init__(
        self,
        backend: RayBackend,
        *,
        interval_s: float = 0.5,
        ping_timeout_s: float = 1.0,
        max_ping_failures: int = 2,
        join_timeout_s: float = 60.0,
    ) -> None:
        self.backend = backend
        self.interval_s = interval_s
        self.ping_timeout_s = ping_timeout_s
        self.max_ping_failures = max_ping_failures
        self.join_timeout_s = join_timeout_s
        self.pool: PoolService | None = None
        self._joining: dict[str, tuple[NodeRecord, Any, float]] = {}  # ray id -> record, report ref, t0
        self._seen: set[str] = set()  # Ray node ids handled (joining, alive, lost or refused)
        self._by_ray_id: dict[str, NodeRecord] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # one pass at a time (thread vs. explicit calls in tests)

    # --------------------------------------------------------------- lifecycle
    def discover(self, timeout_s: float = 60.0) -> list[NodeRecord]:
        """Start agents on every live Ray node and wait until each reported (or `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        self.sync_once()
        while self._joining and time.monotonic() < deadline:
            time.sleep(0.05)
            self.sync_once()
        return self.backend.live()

    def attach(self, pool: PoolService) -> None:
        """From now on, joins and losses change `pool` (the nodes found so far are logged as joined)."""
        self.pool = pool
        for record in self.backend.live():
            self._event("node.joined", record, {"devices": len(record.devices), "backend": record.backend})

    def start(self) -> MembershipWatcher:
        self._thread = threading.Thread(target=self._loop, name="gpupool-membership", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sync_once()
            except Exception:
                log.exception("membership pass failed; the watcher goes on")

    # -------------------------------------------------------------------- pass
    def sync_once(self) -> None:
        """One pass: admit new nodes, finish joins, ping live nodes, lose dead ones."""
        import ray

        with self._lock:
            table = {node["NodeID"]: node for node in ray.nodes()}  # type: ignore[no-untyped-call]
            for ray_id, node in table.items():
                if node.get("Alive") and ray_id not in self._seen:
                    self._admit(ray_id, node)
            joined = self._finish_joins()
            for record in list(self._by_ray_id.values()):
                if record.state == "alive" and not table.get(record.ray_node_id, {}).get("Alive", False):
                    self._lose(record, "Ray reports the node dead", dead=True)
            self._ping(table)
            if joined and self.pool is not None:
                self.pool.refresh_devices()
                self.pool.schedule()

    def _admit(self, ray_id: str, node: dict[str, Any]) -> None:
        self._seen.add(ray_id)
        labels = {str(k): str(v) for k, v in (node.get("Labels") or {}).items()}
        name = node_name(ray_id, labels)
        try:
            spec = simulate_spec(labels)
        except InvalidRequest as exc:
            log.error("node %s (ray %s) left out: %s", name, ray_id[:8], exc.message)
            return
        current = self.backend.get(name)
        if current is not None and current.state != "lost":
            log.error("node %s (ray %s) left out: the name is taken by ray %s", name, ray_id[:8],
                      current.ray_node_id[:8])  # fmt: skip
            return
        record = NodeRecord(
            name=name,
            ray_node_id=ray_id,
            address=str(node.get("NodeManagerAddress", "")),
            raylet_port=int(node.get("NodeManagerPort", 0) or 0),
        )
        record.actor = handles.start_agent(ray_id, name, spec)
        self._joining[ray_id] = (record, record.actor.report.remote(), time.monotonic())

    def _finish_joins(self) -> bool:
        import ray

        joined = False
        for ray_id, (record, ref, started) in list(self._joining.items()):
            ready, _ = ray.wait([ref], timeout=0)
            if not ready:
                if time.monotonic() - started > self.join_timeout_s:
                    log.error("agent on node %s did not start in %gs; will retry", record.name,
                              self.join_timeout_s)  # fmt: skip
                    handles.kill(record.actor)
                    del self._joining[ray_id]
                    self._seen.discard(ray_id)
                continue
            del self._joining[ray_id]
            try:
                report = ray.get(ref, timeout=0)
            except Exception as exc:
                log.warning("agent on node %s failed to start: %s", record.name, exc)
                self._seen.discard(ray_id)
                continue
            previous = self.backend.get(record.name)
            record.devices, record.hostname, record.backend = report.devices, report.hostname, report.backend
            record.state = "alive"
            self.backend.put(record)
            self._by_ray_id[ray_id] = record
            joined = True
            action = "node.rejoined" if previous is not None else "node.joined"
            self._event(action, record, {"devices": len(record.devices), "backend": record.backend})
            log.info("%s: %s (%d devices, ray %s)", action, record.name, len(record.devices), ray_id[:8])
        return joined

    def _ping(self, table: dict[str, dict[str, Any]]) -> None:
        import ray

        # Live nodes, plus lost ones Ray still calls alive that were declared lost by missed pings
        # alone (they may come back, with their stale workloads killed). A node lost with proof of
        # death is never pinged again: its agent's worker process can outlive a killed raylet for
        # a moment and still answer, which must not bring the node back.
        targets = [
            r for r in self._by_ray_id.values()
            if r.state == "alive"
            or (r.state == "lost" and not r.dead and table.get(r.ray_node_id, {}).get("Alive"))
        ]  # fmt: skip
        if not targets:
            return
        refs = {record.ray_node_id: record.actor.ping.remote() for record in targets}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=self.ping_timeout_s)
        answered = set(ready)
        for record in targets:
            ref = refs[record.ray_node_id]
            failure = "" if ref in answered else f"no answer to a ping within {self.ping_timeout_s:g}s"
            dead = False
            if not failure:
                try:
                    ray.get(ref, timeout=0)
                except Exception as exc:
                    failure, dead = f"agent gone ({type(exc).__name__})", True
            if record.state == "lost":
                if dead or _refuses_connections(record.address, record.raylet_port):
                    record.dead = True
                elif not failure and self.backend.get(record.name) is record:
                    self._readmit(record)
                continue
            if not failure:
                record.ping_failures = 0
                continue
            record.ping_failures += 1
            if not dead and _refuses_connections(record.address, record.raylet_port):
                failure, dead = (
                    f"{failure}; raylet {record.address}:{record.raylet_port} refuses connections",
                    True,
                )
            if dead or record.ping_failures >= self.max_ping_failures:
                reason = failure if dead else f"{failure} ({record.ping_failures} in a row)"
                self._lose(record, reason, dead=dead)

    def _lose(self, record: NodeRecord, reason: str, *, dead: bool = False) -> None:
        record.state, record.reason, record.lost_at = "lost", reason, time.time()
        record.dead = dead
        record.ping_failures = 0
        log.warning("node %s (ray %s) lost: %s", record.name, record.ray_node_id[:8], reason)
        if self.pool is not None:
            self.pool.node_lost(record.name, f"node {record.name} lost: {reason}", actor=ACTOR)

    def _readmit(self, record: NodeRecord) -> None:
        """A node declared lost answers again: kill its stale workloads, then return its devices."""
        try:
            killed = handles.call(record.actor, "reset", timeout_s=5.0)
        except handles.CallFailed as exc:
            log.warning("node %s answers again but could not be reset: %s", record.name, exc)
            return
        record.state, record.reason, record.lost_at = "alive", "", None
        self._event(
            "node.rejoined", record, {"devices": len(record.devices), "stale_workloads_killed": killed}
        )
        if self.pool is not None:
            self.pool.refresh_devices()
            self.pool.schedule()

    def _event(self, action: str, record: NodeRecord, details: dict[str, Any]) -> None:
        if self.pool is not None:
            details = {"node": record.name, "ray_node_id": record.ray_node_id, **details}
            self.pool.store.add_event(ACTOR, action, details=details)
