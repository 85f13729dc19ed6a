"""An in-process VM pool over the test VM host: store, libvirt backend, pool and the vms adapter."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmhost import VmTestHost

from gpupool.devices.host_files import HostFiles
from gpupool.devices.libvirt import LibvirtBackend
from gpupool.devices.libvirt_config import DomainConfig
from gpupool.devices.libvirt_host import LibvirtHost
from gpupool.model import ADMIN, Claim, Tenant
from gpupool.pool import PoolService
from gpupool.scheduler import make_placer
from gpupool.store import Store
from gpupool.vms import VmManager, VmService

ADMIN_TENANT = Tenant(ADMIN)
TEAM_A = Tenant("team-a")
TEAM_B = Tenant("team-b")


@dataclass
class VmPool:
    host: VmTestHost
    store: Store
    backend: LibvirtBackend
    pool: PoolService
    vms: VmService

    @classmethod
    def open(
        cls, host: VmTestHost, db: Path, domains: LibvirtHost | None = None, resync_s: float = 30.0
    ) -> VmPool:
        store = Store(db)
        for tenant in (TEAM_A, TEAM_B):
            if tenant.name not in {t.name for t in store.list_tenants()}:
                store.create_tenant(tenant.name, f"hash-of-{tenant.name}")
        backend = LibvirtBackend(LibvirtHost(host.uri), HostFiles(host.root))
        pool = PoolService(store, backend, make_placer("default"))
        manager = VmManager(pool, backend, domains or backend.host)
        manager.install()  # as `serve` does: the VM rules are on before the first scheduling pass
        pool.start()
        return cls(host, store, backend, pool, VmService.start(manager, resync_s=resync_s))

    @property
    def manager(self) -> VmManager:
        return self.vms.manager

    @property
    def libvirt(self) -> LibvirtHost:
        return self.manager.domains

    def config(self, domain: str) -> DomainConfig:
        """The domain's persistent config as libvirt has it now, parsed."""
        return self.libvirt.domain(domain).config

    def claim(self, claim_id: str) -> Claim:
        return self.store.get_claim(claim_id)

    def close(self) -> None:
        self.vms.close()
        self.backend.close()
        if self.libvirt is not self.backend.host:
            self.libvirt.close()
        self.store.close()


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
