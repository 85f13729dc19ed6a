"""`gpupool serve`: build the pool from options, say where it is, and run the API server."""

from __future__ import annotations

import errno
import logging
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from rich.console import Console

from gpupool.agent import AgentOptions, NodeAgent
from gpupool.api.app import create_app
from gpupool.api.auth import resolve_admin_token
from gpupool.api.limits import DEFAULT_MAX_BODY_BYTES
from gpupool.api.routes.workloads import install_agent
from gpupool.api.store_choice import open_store, pool_identity
from gpupool.client_config import Registration, register_server, unregister_server
from gpupool.devices import open_backend
from gpupool.errors import InvalidRequest
from gpupool.pool import PoolService
from gpupool.pool.service import DEFAULT_PREEMPT_GRACE_S
from gpupool.scheduler import make_placer

if TYPE_CHECKING:
    from gpupool.cluster import ClusterMode
    from gpupool.devices import DeviceBackend
    from gpupool.kube import KubeMode, KubeOptions
    from gpupool.vms import VmService

log = logging.getLogger("gpupool.serve")


@dataclass(frozen=True)
class ServeOptions:
    simulate: str | None = None
    host: str = "127.0.0.1"
    port: int = 7070
    db: str | None = None
    policy: str = "default"
    log_level: str = "info"
    agent: AgentOptions | None = None  # node agent settings (leases, idle, watchdog, MPS)
    ray: str | None = None  # cluster mode: the Ray address to join (`auto`: the local cluster)
    preempt_grace_s: float = DEFAULT_PREEMPT_GRACE_S  # SIGTERM -> SIGKILL for preempted workloads
    kube: KubeOptions | None = None  # Kubernetes mode: extender, webhook and pod controller
    libvirt: str | None = None  # VM mode: the libvirt URI whose GPUs and domains gpupool serves
    libvirt_host_root: str | None = None  # where that host's sysfs and /dev are (default /)
    libvirt_gpus: str | None = None  # GPUs from this libvirt URI instead (a test-driver host, no GPU)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # larger request bodies get 413


def build_pool(
    options: ServeOptions, cluster: ClusterMode | None = None, kube: KubeMode | None = None
) -> PoolService:
    """Open the device backend, the store and the placer; reconcile and return the started pool."""
    if options.libvirt is not None:
        backend, notice = _libvirt_backend(options), None
    else:
        backend, notice = (cluster.backend, None) if cluster is not None else open_backend(options.simulate)
    if kube is not None:
        backend, notice = kube.backend, None
    if notice:
        log.warning(notice)
    store, store_notice = open_store(options.db, pool_identity(backend))
    if store_notice:
        log.warning(store_notice)
    pool = PoolService(
        store,
        backend,
        make_placer(options.policy),
        preempt_grace_s=options.preempt_grace_s,
        # Ray and Kubernetes nodes join later: there a claim too big for now waits
        fixed_inventory=cluster is None and kube is None,
    )
    if options.libvirt is not None:
        _install_vm_rules(pool)  # before the first scheduling pass
    for claim in pool.start():
        log.warning("claim %s (%s) is bound to a device that no longer exists", claim.id, claim.tenant)
    return pool


GIL_SWITCH_INTERVAL_S = 0.001
"""The store's writer thread gives up the GIL on every statement and waits, by default up to 5 ms,
to get it back from a thread answering requests: a batch of a dozen statements could wait a dozen
times. A shorter interval costs nothing while only one thread runs."""


def serve(options: ServeOptions) -> None:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    logging.basicConfig(
        level=options.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Alembic narrates every start-up at INFO ("Context impl SQLiteImpl."); only its problems matter.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    _check_port_free(options.host, options.port)
    other_modes = (options.simulate, options.ray, options.kube)
    if options.libvirt is not None and any(mode is not None for mode in other_modes):
        raise InvalidRequest("--libvirt: serves one libvirt host's GPUs; drop --simulate, --ray and --kube")
    if options.libvirt_gpus is not None and options.libvirt is None:
        raise InvalidRequest("--libvirt-gpus: give --libvirt URI too (where the domains are)")
    cluster = _join_cluster(options)
    kube = _join_kube(options)
    pool = build_pool(options, cluster, kube)
    admin_token, token_file = resolve_admin_token()
    connect_host = "127.0.0.1" if options.host in ("0.0.0.0", "::", "") else options.host
    url = f"http://{connect_host}:{options.port}"
    registration = register_server(url, admin_token, pool_identity(pool.backend))
    _banner(pool, url, token_file, registration, options)
    app = create_app(pool, admin_token, max_body_bytes=options.max_body_bytes)
    app.state.shutdown_hooks.append(lambda: unregister_server(url))  # the CLI moves to another server
    app.state.vms = _start_vms(pool, options)
    if app.state.vms is not None:
        app.state.shutdown_hooks.insert(0, app.state.vms.close)  # after the agent has stopped
    agent = NodeAgent(pool, _agent_options(options, cluster))
    if cluster is not None:
        cluster.attach(pool, agent)  # before start: workloads go to the agents of their nodes
        app.state.node_directory = cluster
    agent.start()
    # Stop detached workloads and MPS daemons when the server stops (SIGTERM and Ctrl-C included).
    app.state.shutdown_hooks.append(agent.shutdown)
    if cluster is not None:
        app.state.shutdown_hooks.insert(0, cluster.close)  # last: after the agent has stopped
    install_agent(app, agent)
    if kube is not None:
        kube.attach(pool)  # extender + webhook server, pod and node informers, pod controller
        app.state.node_directory = kube
        app.state.shutdown_hooks.insert(0, kube.close)  # last: after the agent has stopped
        where = f"{kube.api.server} ({kube.version})"
        Console(stderr=True).print(f"  Kubernetes {where}: extender and webhook at {kube.url}")
    # Open dashboard streams never end by themselves: give them 2 s at shutdown, then close them.
    uvicorn.run(
        app,
        host=options.host,
        port=options.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
    )


def _libvirt_backend(options: ServeOptions) -> DeviceBackend:
    """VM mode (`--libvirt URI`): the GPUs of that libvirt host (imports libvirt only here)."""
    from gpupool.vms.serve import open_libvirt_backend

    return open_libvirt_backend(options.libvirt_gpus or options.libvirt or "", options.libvirt_host_root)


def _install_vm_rules(pool: PoolService) -> None:
    from gpupool.vms.serve import install_vm_rules

    install_vm_rules(pool)


def _start_vms(pool: PoolService, options: ServeOptions) -> VmService | None:
    if options.libvirt is None:
        return None
    from gpupool.vms.serve import start_vms

    return start_vms(pool, options.libvirt if options.libvirt_gpus else None)


def _join_cluster(options: ServeOptions) -> ClusterMode | None:
    """Cluster mode (`--ray`): join Ray and start the node agents; None on one machine."""
    if options.ray is None:
        return None
    if options.simulate is not None:
        raise InvalidRequest("--simulate: with --ray, give each Ray node the label gpupool.io/simulate")
    from gpupool.cluster import ClusterMode  # only here: one machine never imports Ray

    return ClusterMode.join(options.ray)


def _join_kube(options: ServeOptions) -> KubeMode | None:
    """Kubernetes mode (`--kube`): reach the API server and read the nodes; None without it."""
    if options.kube is None:
        return None
    if options.simulate is not None or options.ray is not None:
        flag = "--simulate" if options.simulate is not None else "--ray"
        raise InvalidRequest(f"{flag}: not with --kube (nodes declare their GPUs: gpupool.io/simulate)")
    from gpupool.kube import KubeMode  # only here: one machine never imports the kubernetes client

    _check_port_free(options.kube.host, options.kube.port, "--kube-port")
    return KubeMode.connect(options.kube)


def _agent_options(options: ServeOptions, cluster: ClusterMode | None) -> AgentOptions | None:
    """The agent's settings; cluster mode adjusts them (see `ClusterMode.agent_options`)."""
    return options.agent if cluster is None else cluster.agent_options(options.agent)


def _command_name() -> str:
    """`gpupool` when that is what the shell finds, else the path this one was started by."""
    started_as = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    on_path = shutil.which("gpupool")
    if started_as is None or started_as.name != "gpupool":
        return "gpupool"
    return "gpupool" if on_path and Path(on_path).resolve() == started_as else str(started_as)


def _check_port_free(host: str, port: int, flag: str = "--port") -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InvalidRequest(
                    f"port: {host}:{port} is already in use (choose another with {flag})"
                ) from None
            raise InvalidRequest(f"host: cannot listen on {host}:{port} ({exc.strerror})") from None


def _banner(
    pool: PoolService, url: str, token_file: Path | None, registration: Registration, options: ServeOptions
) -> None:
    console = Console(stderr=True, soft_wrap=True)
    devices = pool.devices
    nodes = len({d.node for d in devices})
    models = sorted({d.model for d in devices})
    # `default` is an alias: name the profile too, as /healthz and the dashboard report it
    policy = options.policy
    if policy != pool.placer.name:
        policy = f"{policy} (= {pool.placer.name})"
    console.print(
        f"[bold green]gpupool[/] serving {len(devices)} device(s) on {nodes} node(s) "
        f"({', '.join(models) or 'none'}) from the [bold]{pool.backend.name}[/] backend, "
        f"policy [bold]{policy}[/]"
    )
    console.print(f"  API        {url}/v1   (OpenAPI: {url}/openapi.json, docs: {url}/docs)")
    console.print(f"  Dashboard  {url}/")
    if token_file is not None:
        console.print(f"  Admin token kept in {token_file} (mode 0600)")
    else:
        console.print("  Admin token from GPUPOOL_ADMIN_TOKEN")
    console.print(f"  Store      {pool.store.shown}   (pool {pool_identity(pool.backend)})")
    console.print(f"  Client config for this user: {registration.path}")
    flag = ""
    if registration.default_elsewhere is not None:
        console.print(
            f"  [yellow]The CLI's default stays {registration.default_elsewhere} (still running); "
            f"reach this one with --url {url} or GPUPOOL_URL={url}[/]"
        )
        flag = f" --url {url}"
    example = f"{_command_name()} claim{flag} --memory 10GiB --compute 25"
    console.print(f"  Try, in another terminal:  [bold]{example}[/]")
    if options.host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"  [yellow]listening on {options.host}: reachable from other machines[/]")
