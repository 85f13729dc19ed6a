"""Prometheus metrics of one app: devices, tenants, scheduler and API, in a registry of its own.

Device series carry DCGM exporter's label names (`gpu`, `UUID`, `modelName`, `Hostname`) so that
dashboards built for DCGM join with ours. Device and tenant gauges are read from the pool at
scrape time; scheduler and API series are counted as things happen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gpupool.model import ClaimState
from gpupool.model.quota import Quota
from gpupool.pool import PoolService
from gpupool.pool.usage import tenant_usage
from gpupool.store.quotas import QuotaRecords

DEVICE_LABELS = ("gpu", "UUID", "modelName", "Hostname")
DECISION_BUCKETS_S = (5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.5, 1.0)
REQUEST_BUCKETS_S = (1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 5e-2, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BIND_FAILURE_REASONS = ("capacityerror", "conflict")  # the store's refusals, by exception name
UNTIMED_PATHS = ("/v1/stream",)  # long-lived streams would drown the latency histogram


class PoolCollector(Collector):
    """Device and tenant gauges computed from the pool at each scrape."""

    def __init__(self, pool: PoolService) -> None:
        self.pool = pool

    def collect(self) -> Iterator[Metric]:
        yield from self._devices()
        yield from self._tenants()

    def _devices(self) -> Iterator[Metric]:
        families = {
            "memory_total": GaugeMetricFamily(
                "gpupool_device_memory_total_bytes", "Device memory in bytes", labels=DEVICE_LABELS
            ),
            "memory_allocated": GaugeMetricFamily(
                "gpupool_device_memory_allocated_bytes",
                "Device memory bound to claims, in bytes",
                labels=DEVICE_LABELS,
            ),
            "memory_used": GaugeMetricFamily(
                "gpupool_device_memory_used_bytes",
                "Device memory in use by processes, in bytes (telemetry)",
                labels=DEVICE_LABELS,
            ),
            "compute_allocated": GaugeMetricFamily(
                "gpupool_device_compute_allocated_percent",
                "Share of the device's SMs bound to claims, percent",
                labels=DEVICE_LABELS,
            ),
            "utilization": GaugeMetricFamily(
                "gpupool_device_utilization_percent",
                "GPU utilization, percent (like DCGM_FI_DEV_GPU_UTIL)",
                labels=DEVICE_LABELS,
            ),
            "claims": GaugeMetricFamily(
                "gpupool_device_claims", "Claims bound to the device", labels=DEVICE_LABELS
            ),
        }
        for view in self.pool.device_views():
            device = view.device
            labels = [str(device.index), device.uuid, device.model, device.node]
            families["memory_total"].add_metric(labels, device.memory_total_bytes)
            families["memory_allocated"].add_metric(labels, view.allocated_memory_bytes)
            families["compute_allocated"].add_metric(labels, view.allocated_compute_percent)
            families["claims"].add_metric(labels, len(view.claim_ids))
            if view.telemetry is not None:
                families["memory_used"].add_metric(labels, view.telemetry.memory_used_bytes)
                if view.telemetry.utilization_percent is not None:  # N/A (MIG instances): no sample
                    families["utilization"].add_metric(labels, view.telemetry.utilization_percent)
        yield from families.values()

    def _tenants(self) -> Iterator[Metric]:
        claims = self.pool.store.list_claims(states=[ClaimState.PENDING, ClaimState.BOUND], limit=1_000_000)
        usage = tenant_usage(claims, self.pool.schedulable_devices)
        names = sorted({t.name for t in self.pool.store.list_tenants()} | set(usage))
        gauges = {
            "allocated_gpus": GaugeMetricFamily(
                "gpupool_tenant_allocated_gpus",
                "GPU-equivalents bound to the tenant's claims",
                labels=["tenant"],
            ),
            "allocated_memory_bytes": GaugeMetricFamily(
                "gpupool_tenant_allocated_memory_bytes",
                "Memory bound to the tenant, bytes",
                labels=["tenant"],
            ),
            "allocated_compute_percent": GaugeMetricFamily(
                "gpupool_tenant_allocated_compute_percent",
                "SM share bound to the tenant, percent summed over devices",
                labels=["tenant"],
            ),
            "bound_claims": GaugeMetricFamily(
                "gpupool_tenant_bound_claims", "Bound claims of the tenant", labels=["tenant"]
            ),
            "pending_claims": GaugeMetricFamily(
                "gpupool_tenant_pending_claims", "Pending claims of the tenant", labels=["tenant"]
            ),
        }
        for name in names:
            entry = usage.get(name)
            gauges["allocated_gpus"].add_metric([name], entry.allocated_gpus if entry else 0.0)
            gauges["allocated_memory_bytes"].add_metric([name], entry.allocated_memory_bytes if entry else 0)
            gauges["allocated_compute_percent"].add_metric(
                [name], entry.allocated_compute_percent if entry else 0
            )
            gauges["bound_claims"].add_metric([name], entry.bound_claims if entry else 0)
            gauges["pending_claims"].add_metric([name], entry.pending_claims if entry else 0)
        yield from gauges.values()
        yield from _quota_gauges(QuotaRecords(self.pool.store).quotas())
        queue = GaugeMetricFamily("gpupool_scheduler_queue_length", "Pending claims waiting to be bound")
        queue.add_metric([], sum(u.pending_claims for u in usage.values()))
        yield queue


def _quota_gauges(quotas: dict[str, Quota]) -> Iterator[Metric]:
    """Guarantee and limit per tenant that has them set."""
    for field, help_text in (
        ("guarantee_gpus", "Guaranteed GPU-equivalents of the tenant (never preempted)"),
        ("limit_gpus", "Most GPU-equivalents the tenant may hold"),
        ("guarantee_memory_bytes", "Guaranteed GPU memory of the tenant, bytes"),
        ("limit_memory_bytes", "Most GPU memory the tenant may hold, bytes"),
    ):
        family = GaugeMetricFamily(f"gpupool_tenant_{field}", help_text, labels=["tenant"])
        for name, quota in sorted(quotas.items()):
            value = getattr(quota, field)
            if value is not None:
                family.add_metric([name], value)
        yield family


class PoolMetrics:
    """The app's registry, its event counters, and the pool observer that feeds them."""

    def __init__(self, pool: PoolService) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.decision_seconds = Histogram(
            "gpupool_scheduler_decision_seconds",
            "Time to place one pending claim, seconds",
            ["result"],
            buckets=DECISION_BUCKETS_S,
            registry=self.registry,
        )
        self._decision_series: dict[bool, Histogram] = {}
        self.bind_failures = Counter(
            "gpupool_scheduler_bind_failures",
            "Placements the store refused (lost races)",
            ["reason"],
            registry=self.registry,
        )
        for reason in BIND_FAILURE_REASONS:  # export zeros before the first failure
            self.bind_failures.labels(reason)
        self.preemptions = Counter(
            "gpupool_scheduler_preemptions",
            "Claims preempted to make room for in-guarantee claims",
            ["tenant"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "gpupool_api_request_duration_seconds",
            "Time to answer an API request, seconds",
            ["method", "route"],
            buckets=REQUEST_BUCKETS_S,
            registry=self.registry,
        )
        self.errors = Counter(
            "gpupool_api_errors",
            "API answers with status >= 400",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.registry.register(PoolCollector(pool))

    # PoolObserver
    def on_decision(self, seconds: float, placed: bool) -> None:
        # Every claim makes a decision: the two series are looked up once (on first use, so that a
        # result never seen is not exported as zero), not through `labels()` each time.
        series = self._decision_series.get(placed)
        if series is None:
            series = self.decision_seconds.labels("placed" if placed else "unschedulable")
            self._decision_series[placed] = series
        series.observe(seconds)

    def on_bind_failure(self, reason: str) -> None:
        self.bind_failures.labels(reason).inc()

    def on_preemption(self, tenant: str, count: int) -> None:
        self.preemptions.labels(tenant).inc(count)

    def render(self) -> bytes:
        """The text exposition format of every series."""
        return generate_latest(self.registry)


class RequestMetricsMiddleware:
    """Pure ASGI middleware timing each HTTP request by route template (bounded label values)."""

    def __init__(self, app: ASGIApp, metrics: PoolMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNTIMED_PATHS):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            route = _route_template(scope)
            method = str(scope.get("method", "GET"))
            self.metrics.request_seconds.labels(method, route).observe(time.perf_counter() - started)
            if status >= 400:
                self.metrics.errors.labels(method, route, str(status)).inc()


def _route_template(scope: Scope) -> str:
    """`/v1/claims/{claim_id}` rather than the raw path; `unmatched` for 404s on unknown paths."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
