"""Prometheus series of the node agent: GPU processes that belong to no claim, per device."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gpupool.agent import NodeAgent
from gpupool.api.metrics import DEVICE_LABELS


class AgentCollector(Collector):
    """`gpupool_unclaimed_gpu_processes`: at the last sample, with DCGM's device labels."""

    def __init__(self, agent: NodeAgent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "gpupool_unclaimed_gpu_processes",
            "Processes on a pooled device that belong to no claim (killed only with --kill-unclaimed)",
            labels=DEVICE_LABELS,
        )
        counts = self.agent.memory.unclaimed_by_device
        for device in self.agent.pool.devices:
            labels = [str(device.index), device.uuid, device.model, device.node]
            family.add_metric(labels, counts.get(device.uuid, 0))
        yield family
