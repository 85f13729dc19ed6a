"""`gpupool kube node-agent`: the per-node DaemonSet that tells gpupool what GPUs its node has.

It reads the node's devices (NVML, or a simulated spec) and writes them into the Node's
`gpupool.io/devices` annotation, where gpupool's node informer reads them: the API server is
the only channel between the nodes and gpupool, so no extra port or route is needed.
It writes only when the inventory changed (a GPU added, removed, or put in MIG mode).
"""

from __future__ import annotations

import logging
import threading

from gpupool.devices import DeviceBackend, NvmlBackend, RenamedSimulatedBackend, one_node_spec
from gpupool.kube import keys
from gpupool.kube.apiclient import KubeApi, KubeApiError
from gpupool.kube.inventory import devices_annotation

log = logging.getLogger("gpupool.kube")


def open_node_devices(node: str, simulate: str | None) -> DeviceBackend:
    """NVML on this host, or simulated GPUs named after `node` (InvalidRequest/DeviceBackendError)."""
    if simulate is not None:
        return RenamedSimulatedBackend(one_node_spec(simulate, f"--simulate {simulate!r}"), node)
    return NvmlBackend(node_name=node)


def report_devices(api: KubeApi, node: str, backend: DeviceBackend, last: str | None = None) -> str:
    """Write the node's device annotation unless it equals `last`; returns the value written."""
    value = devices_annotation(backend.devices())
    if value != last:
        api.patch_annotations("nodes", node, {keys.NODE_DEVICES: value})
        log.info("node %s: reported %d device(s)", node, len(backend.devices()))
    return value


def run_node_agent(
    api: KubeApi, node: str, backend: DeviceBackend, interval_s: float, stop: threading.Event
) -> None:
    """Report now and then every `interval_s` until `stop` is set; API errors are retried."""
    last: str | None = None
    while True:
        try:
            last = report_devices(api, node, backend, last)
        except KubeApiError as exc:
            log.warning("node %s: cannot report devices: %s", node, exc.message)
            last = None
        if stop.wait(interval_s):
            return
