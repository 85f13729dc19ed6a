"""Kubernetes mode in one object: connect, serve the nodes' devices, run the extender, the webhook
and the pod controller beside the pool.

kube = KubeMode.connect(KubeOptions(kubeconfig=...))   # reachability check, first node list
pool = PoolService(store, kube.backend, placer)          # devices = what the nodes declare
kube.attach(pool)                                        # HTTPS server, informers, controller
...
kube.close()
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from gpupool.errors import DeviceBackendError, InvalidRequest
from gpupool.kube.apiclient import KubeApi, Obj
from gpupool.kube.claims import PodClaims
from gpupool.kube.controller import PodController
from gpupool.kube.extender import Extender
from gpupool.kube.informer import Informer
from gpupool.kube.inventory import KubeNodeBackend
from gpupool.kube.server import KubeHttpsServer, create_kube_app
from gpupool.model.node_wire import NodePublic
from gpupool.pool import PoolService

log = logging.getLogger("gpupool.kube")

KUBE_HINT = "install it with `pip install 'gpupool[kube]'`"
DEFAULT_KUBE_PORT = 9443
SYNC_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class KubeOptions:
    """`gpupool serve --kube ...`: where the API server is and how gpupool is reached by it."""

    kubeconfig: str  # a kubeconfig path, or `in-cluster`
    host: str = "127.0.0.1"  # the HTTPS server of the extender and the webhook
    port: int = DEFAULT_KUBE_PORT
    certfile: str | None = None
    keyfile: str | None = None
    scheduler_name: str | None = None  # the webhook sets it on vGPU pods when given
    resync_s: float = 30.0  # full list of pods and nodes, seconds


class KubeMode:
    mode = "kubernetes"

    def __init__(self, options: KubeOptions, api: KubeApi, backend: KubeNodeBackend, version: str) -> None:
        self.options = options
        self.api = api
        self.backend = backend
        self.version = version
        self.url = f"https://{options.host}:{options.port}"
        self.pool: PoolService | None = None
        self.controller: PodController | None = None
        self._informers: list[Informer] = []
        self._server: KubeHttpsServer | None = None

    @classmethod
    def connect(cls, options: KubeOptions) -> KubeMode:
        """Check the options, reach the API server and read the nodes' devices (before the pool starts)."""
        for flag, path in (("--kube-tls-cert", options.certfile), ("--kube-tls-key", options.keyfile)):
            if not path:
                raise InvalidRequest(f"{flag}: required with --kube (make a pair with `gpupool kube certs`)")
            if not Path(path).is_file():
                raise InvalidRequest(f"{flag}: no file at {path}")
        try:
            import kubernetes  # noqa: F401
        except ImportError:
            raise DeviceBackendError(f"--kube needs the kubernetes client ({KUBE_HINT})") from None
        api = KubeApi(options.kubeconfig)
        version = api.version()
        backend = KubeNodeBackend()
        nodes, _version = api.list_nodes()
        backend.sync(nodes)
        return cls(options, api, backend, version)

    def attach(self, pool: PoolService) -> None:
        """Serve the extender and webhook, start the informers and the controller for `pool`."""
        self.pool = pool
        claims = PodClaims(pool)
        self.controller = PodController(claims, self.api)
        extender = Extender(pool, self.api, claims)
        app = create_kube_app(extender, self.options.scheduler_name)
        assert self.options.certfile and self.options.keyfile
        self._server = KubeHttpsServer(
            app, self.options.host, self.options.port, self.options.certfile, self.options.keyfile
        )
        self._server.start()
        resync = self.options.resync_s
        nodes = Informer(self.api, "nodes", self._nodes_listed, self._node_changed, resync)
        pods_informer = Informer(self.api, "pods", self.controller.on_list, self.controller.on_event, resync)
        self._informers = [nodes, pods_informer]
        for informer in self._informers:
            informer.start()
        self.controller.start()
        if not pods_informer.synced.wait(SYNC_TIMEOUT_S):
            log.warning("the first pod list took over %.0f s; the resync runs when it comes", SYNC_TIMEOUT_S)

    def close(self) -> None:
        for informer in self._informers:
            informer.stop()
        if self.controller is not None:
            self.controller.stop()
        if self._server is not None:
            self._server.stop()
        self.api.close()

    # --------------------------------------------------------------- nodes
    def _nodes_listed(self, items: list[Obj]) -> None:
        if self.backend.sync(items):
            self._devices_changed()

    def _node_changed(self, kind: str, node: Obj) -> None:
        name = str((node.get("metadata") or {}).get("name", ""))
        changed = self.backend.remove(name) if kind == "DELETED" else self.backend.update(node)
        if changed:
            self._devices_changed()

    def _devices_changed(self) -> None:
        assert self.pool is not None
        for claim in self.pool.refresh_devices():
            log.warning("claim %s (%s) is bound to a device that left the cluster", claim.id, claim.tenant)
        self.pool.schedule()

    def nodes(self) -> list[NodePublic]:
        """The node directory for `GET /v1/nodes`: Kubernetes nodes that declare devices."""
        devices = self.pool.devices if self.pool is not None else self.backend.devices()
        problems = self.backend.problems()
        names = sorted({d.node for d in devices} | set(problems))
        return [
            NodePublic(
                name=name,
                state="alive" if name not in problems else "lost",
                devices=sum(1 for d in devices if d.node == name),
                models=sorted({d.model for d in devices if d.node == name}),
                launch="kubernetes",
                backend=self.backend.name,
                reason=problems.get(name, ""),
            )
            for name in names
        ]
