"""A real Kubernetes control plane for tests: etcd + kube-apiserver + kube-scheduler v1.20.2 on free
loopback ports, started and stopped by the PIDs we started. No kubelet: nodes are API objects the
tests make Ready, pods get bound and never run.

The binaries come from `scripts/k8s-build.sh` (cached outside the clone); where they are missing
the tests skip with the reason.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from serverctl import free_port

K8S_VERSION = "1.20.2"
BIN_DIR = Path(os.environ.get("GPUPOOL_K8S_BIN") or f"/var/cache/gpupool/k8s-v{K8S_VERSION}/bin")
ADMIN_TOKEN = "admin-token"
SCHEDULER_TOKEN = "scheduler-token"
GPUPOOL_TOKEN = "gpupool-token"
GPUPOOL_USER = "system:serviceaccount:gpupool:gpupool"  # what deploy/kubernetes/rbac.yaml grants
AGENT_TOKEN = "node-agent-token"
AGENT_USER = "system:serviceaccount:gpupool:gpupool-node-agent"
REPO_ROOT = Path(__file__).resolve().parents[2]


def unavailable_reason() -> str | None:
    """Why the control plane cannot start here, or None when it can."""
    for binary in ("kube-apiserver", "kube-scheduler"):
        if not (BIN_DIR / binary).is_file():
            return f"no {binary} in {BIN_DIR} (scripts/test.sh builds it with scripts/k8s-build.sh, as root)"
    if shutil.which("etcd") is None:
        return "no etcd (Debian's etcd-server; scripts/k8s-build.sh installs it)"
    try:
        import cryptography  # noqa: F401
        import kubernetes  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} not installed (pip install -e '.[dev]')"
    return None


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 30.0, every_s: float = 0.1) -> Any:
    """Poll `check` until it returns something truthy; AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what} (last: {last!r})")


def _kubeconfig(path: Path, server: str, ca: Path, token: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: test\n  cluster: {{server: '{server}', certificate-authority: '{ca}'}}\n"
        f"users:\n- name: u\n  user: {{token: '{token}'}}\n"
        "contexts:\n- name: test\n  context: {cluster: test, user: u}\ncurrent-context: test\n"
    )
    return path


def _rsa_key_pair(private: Path, public: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@dataclass
class ControlPlane:
    root: Path
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    etcd_data: Path | None = None

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def ca(self) -> Path:
        return self.run / "ca.crt"

    def kubeconfig(self, who: str = "admin") -> Path:
        return self.run / f"{who}.kubeconfig"

    # ------------------------------------------------------------ start/stop
    def start(self) -> ControlPlane:
        from gpupool.kube.certs import write_certs

        self.run.mkdir(parents=True, exist_ok=True)
        write_certs(self.run, ["127.0.0.1", "localhost"])  # ca.crt + tls.crt for the API server
        _rsa_key_pair(self.run / "sa.key", self.run / "sa.pub")
        (self.run / "tokens.csv").write_text(
            f'{ADMIN_TOKEN},admin,1,"system:masters"\n'
            f"{SCHEDULER_TOKEN},system:kube-scheduler,2\n"
            f'{GPUPOOL_TOKEN},{GPUPOOL_USER},3,"system:serviceaccounts"\n'
            f'{AGENT_TOKEN},{AGENT_USER},4,"system:serviceaccounts"\n'
        )
        for who, token in (
            ("admin", ADMIN_TOKEN),
            ("scheduler", SCHEDULER_TOKEN),
            ("gpupool", GPUPOOL_TOKEN),
            ("node-agent", AGENT_TOKEN),
        ):
            _kubeconfig(self.kubeconfig(who), self.server, self.ca, token)
        try:
            self._start_etcd()
            self._start_apiserver()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.run / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.procs[name] = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def _wait_healthy(self, name: str, url: str, timeout_s: float = 60.0, **kwargs: Any) -> None:
        def healthy() -> bool:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log_tail(name)}")
            try:
                return httpx.get(url, timeout=2, **kwargs).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(f"{name} at {url}", healthy, timeout_s, every_s=0.2)

    def _start_etcd(self) -> None:
        # A throwaway store: on tmpfs where there is one, so its fsyncs cost nothing.
        shm = Path("/dev/shm")
        base = shm if shm.is_dir() and os.access(shm, os.W_OK) else self.run
        self.etcd_data = Path(tempfile.mkdtemp(prefix="gpupool-etcd-", dir=base))
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        self._spawn(
            "etcd",
            [
                shutil.which("etcd") or "etcd",
                "--name=gpupool-test",
                f"--data-dir={self.etcd_data}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=gpupool-test={peer}",
                "--logger=zap",
                "--log-level=warn",
            ],
        )
        self._wait_healthy("etcd", f"{client}/health")

    def _start_apiserver(self) -> None:
        run = self.run
        self._spawn(
            "apiserver",
            [
                str(BIN_DIR / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.api_port}",
                f"--tls-cert-file={run / 'tls.crt'}",
                f"--tls-private-key-file={run / 'tls.key'}",
                f"--client-ca-file={self.ca}",
                f"--token-auth-file={run / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={run / 'sa.pub'}",
                f"--service-account-signing-key-file={run / 'sa.key'}",
                "--api-audiences=https://kubernetes.default.svc",
                "--service-cluster-ip-range=10.96.0.0/16",
                # No controller-manager: no default service account, and no one to lift the
                # not-ready taint from new nodes; a 127.0.0.1 endpoint fails validation.
                "--endpoint-reconciler-type=none",
                "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
                "--profiling=false",
                "--v=1",
            ],
        )
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        trust = ssl.create_default_context(cafile=str(self.ca))
        self._wait_healthy("apiserver", f"{self.server}/readyz", verify=trust, headers=headers)

    def start_scheduler(
        self,
        extender_url: str | None,
        extender_ca: Path | None = None,
        scheduler_name: str = "default-scheduler",
        weight: int = 10,
    ) -> None:
        """A kube-scheduler serving `scheduler_name`, with gpupool as its extender when a URL is
        given (the configuration deploy/kubernetes/scheduler.yaml ships)."""
        process = "scheduler" if scheduler_name == "default-scheduler" else f"scheduler-{scheduler_name}"
        port = free_port()
        config = self.run / f"{process}.yaml"
        text = (
            "apiVersion: kubescheduler.config.k8s.io/v1beta1\n"
            "kind: KubeSchedulerConfiguration\n"
            f"clientConnection: {{kubeconfig: '{self.kubeconfig('scheduler')}'}}\n"
            "leaderElection: {leaderElect: false}\n"
            f"healthzBindAddress: 127.0.0.1:{port}\n"
            f"metricsBindAddress: 127.0.0.1:{port}\n"
            f"profiles: [{{schedulerName: {scheduler_name}}}]\n"
        )
        if extender_url is not None:
            text += (
                "extenders:\n"
                f"- urlPrefix: '{extender_url}/scheduler'\n"
                "  filterVerb: filter\n"
                "  prioritizeVerb: prioritize\n"
                "  bindVerb: bind\n"
                f"  weight: {weight}\n"
                "  enableHTTPS: true\n"
                f"  tlsConfig: {{caFile: '{extender_ca}'}}\n"
                "  nodeCacheCapable: true\n"
                "  ignorable: false\n"
                "  httpTimeout: 30s\n"
                "  managedResources:\n"
                "  - {name: gpupool.io/vgpu, ignoredByScheduler: true}\n"
            )
        config.write_text(text)
        self._spawn(
            process, [str(BIN_DIR / "kube-scheduler"), f"--config={config}", "--secure-port=0", "--v=2"]
        )
        self._wait_healthy(process, f"http://127.0.0.1:{port}/healthz")

    def stop(self) -> None:
        """Stop what we started, by PID, newest first (SIGTERM, then SIGKILL after 10 s)."""
        for name in reversed(list(self.procs)):
            proc = self.procs.pop(name)
            if proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self.etcd_data is not None:
            shutil.rmtree(self.etcd_data, ignore_errors=True)
            self.etcd_data = None

    def log_tail(self, name: str, chars: int = 3000) -> str:
        path = self.run / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    # --------------------------------------------------------------- helpers
    def ca_bundle(self, ca: Path) -> str:
        return base64.b64encode(ca.read_bytes()).decode()
