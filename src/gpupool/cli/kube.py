"""`gpupool kube certs|node-agent`, and the `gpupool serve --kube*` flags.

`gpupool serve --kube KUBECONFIG` runs the extender, the webhook and the pod controller beside
the API (see docs/kubernetes.md); these commands prepare its certificates and run the per-node
DaemonSet that reports each node's GPUs.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gpupool.cli.output import console

if TYPE_CHECKING:
    from gpupool.kube import KubeOptions

DEFAULT_KUBE_PORT = 9443  # gpupool.kube.DEFAULT_KUBE_PORT, without importing the adapter here

KubeOpt = Annotated[
    str | None,
    typer.Option(
        "--kube", help="Kubernetes mode: a kubeconfig path, or in-cluster (extender, webhook, pods)"
    ),
]
KubeHostOpt = Annotated[
    str | None, typer.Option("--kube-host", help="address of the extender/webhook server (default: --host)")
]
KubePortOpt = Annotated[
    int, typer.Option("--kube-port", min=1, max=65535, help="HTTPS port of the extender/webhook server")
]
KubeCertOpt = Annotated[str | None, typer.Option("--kube-tls-cert", help="its certificate (PEM)")]
KubeKeyOpt = Annotated[str | None, typer.Option("--kube-tls-key", help="its private key (PEM)")]
KubeSchedulerOpt = Annotated[
    str | None,
    typer.Option("--kube-scheduler-name", help="schedulerName the webhook sets on vGPU pods (default: keep)"),
]


def kube_options(
    kubeconfig: str | None,
    host: str,
    kube_host: str | None,
    port: int,
    cert: str | None,
    key: str | None,
    scheduler_name: str | None,
) -> KubeOptions | None:
    """The serve flags as `KubeOptions`, or None without `--kube`."""
    if kubeconfig is None:
        return None
    from gpupool.kube import KubeOptions

    return KubeOptions(kubeconfig, kube_host or host, port, cert, key, scheduler_name)


app = typer.Typer(help="Kubernetes mode: certificates and the per-node agent.", no_args_is_help=True)


@app.command("certs")
def certs(
    out: Annotated[Path, typer.Option("--out", help="directory for ca.crt, ca.key, tls.crt, tls.key")],
    host: Annotated[
        list[str],
        typer.Option("--host", help="a DNS name or IP the server is reached by (repeat for more)"),
    ],
) -> None:
    """Make a private CA (kept if present) and a serving certificate for `serve --kube`."""
    from gpupool.kube.certs import write_certs

    files = write_certs(out, host)
    console.print(f"certificate {files.cert} (key {files.key}) for {', '.join(host)}")
    console.print(f"CA {files.ca_cert}: put it, base64-encoded, in the webhook's and extender's caBundle")


@app.command("node-agent")
def node_agent(
    kube: Annotated[str, typer.Option("--kube", help="a kubeconfig path, or in-cluster")],
    node: Annotated[str, typer.Option("--node", help="this node's Kubernetes name (downward API)")],
    simulate: Annotated[
        str | None, typer.Option("--simulate", help="simulated GPUs instead of NVML, e.g. 4xH100-80GB")
    ] = None,
    interval: Annotated[float, typer.Option("--interval", min=1, help="seconds between reports")] = 60.0,
    once: Annotated[bool, typer.Option("--once", help="report once and exit")] = False,
) -> None:
    """Report this node's GPUs into its gpupool.io/devices annotation (run as a DaemonSet)."""
    from gpupool.kube.apiclient import KubeApi
    from gpupool.kube.node_agent import open_node_devices, report_devices, run_node_agent

    logging.basicConfig(
        level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    backend = open_node_devices(node, simulate)
    api = KubeApi(kube)
    try:
        if once:
            report_devices(api, node, backend)
            return
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        run_node_agent(api, node, backend, interval, stop)
    finally:
        backend.close()
        api.close()
