"""The `vms` adapter as the API and `serve` see it: start it, ask it, stop it."""

from __future__ import annotations

import logging
from collections import defaultdict

from gpupool.devices.libvirt_host import Attached
from gpupool.model import Claim, ClaimState, Tenant
from gpupool.model.vm_wire import VmDomainList, VmDomainPublic, VmGpuList
from gpupool.vms.manager import VmManager
from gpupool.vms.public import domain_public, gpu_public, visible_domains
from gpupool.vms.reconcile import Reconciler, ReconcileReport
from gpupool.vms.traits import gpu_uses
from gpupool.vms.watcher import RESYNC_S, VmWatcher

log = logging.getLogger("gpupool.vms")


class VmService:
    def __init__(self, manager: VmManager, reconciler: Reconciler, watcher: VmWatcher | None = None) -> None:
        self.manager = manager
        self.reconciler = reconciler
        self.watcher = watcher
        self.startup: ReconcileReport | None = None

    @classmethod
    def start(
        cls,
        manager: VmManager,
        resync_s: float = RESYNC_S,
        watch: bool = True,
    ) -> VmService:
        """Hook the VM rules into the pool, reconcile once, then follow libvirt's events."""
        manager.install()
        reconciler = Reconciler(manager)
        service = cls(manager, reconciler)
        service.startup = report = reconciler.run()
        for claim_id, why in report.released.items():
            log.warning("VM claim %s released at start-up: %s", claim_id, why)
        if watch:
            service.watcher = VmWatcher(reconciler, manager.domains, resync_s)
            service.watcher.start()
        return service

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.manager.domains is not self.manager.nodes:  # `--libvirt-gpus`: a connection of its own
            self.manager.domains.close()

    # ---------------------------------------------------------------- changes
    def attach(
        self, caller: Tenant, domain: str, gpus: int | None, profile: str | None, device: str | None
    ) -> tuple[Claim, Attached, VmDomainPublic]:
        claim, placed, state = self.manager.attach(caller, domain, gpus, profile, device)
        return claim, placed, self._domain_public(state.name, caller)

    def detach(self, caller: Tenant, domain: str, claim_id: str | None) -> list[str]:
        return self.manager.detach(caller, domain, claim_id)

    # ------------------------------------------------------------------ reads
    def domains(self, caller: Tenant) -> VmDomainList:
        view = self.manager.views.get(fresh=True)
        records = self.manager.records.records()
        tenants_of: dict[str, set[str]] = defaultdict(set)
        for record in records:
            tenants_of[record.domain_uuid].add(record.tenant)
        visible = visible_domains(caller, view.domains, tenants_of)
        items = [
            domain_public(
                d,
                view,
                [
                    r
                    for r in records
                    if r.domain_uuid == d.uuid and (caller.is_admin or r.tenant == caller.name)
                ],
                self.reconciler.unrecorded if caller.is_admin else [],
            )
            for d in view.domains
            if visible is None or d.name in visible
        ]
        return VmDomainList(items=items)

    def domain(self, caller: Tenant, name: str) -> VmDomainPublic:
        view = self.manager.views.get(fresh=True)
        self.manager.find_domain(caller, view, name)
        return self._domain_public(name, caller)

    def _domain_public(self, name: str, caller: Tenant) -> VmDomainPublic:
        view = self.manager.views.get(fresh=True)
        domain = view.domain_named(name)
        assert domain is not None
        records = self.manager.records.records(domain_uuid=domain.uuid)
        if not caller.is_admin:
            records = [r for r in records if r.tenant == caller.name]
        return domain_public(domain, view, records, self.reconciler.unrecorded if caller.is_admin else [])

    def gpus(self, caller: Tenant) -> VmGpuList:
        view = self.manager.views.get(fresh=True, with_processes=True)
        store = self.manager.pool.store
        bound = store.list_claims(states=[ClaimState.BOUND], limit=1_000_000)
        uses = gpu_uses(view, bound)
        allocations = store.device_allocations()
        tenants_of: dict[str, set[str]] = defaultdict(set)
        for record in self.manager.records.records():
            tenants_of[record.domain_uuid].add(record.tenant)
        visible = visible_domains(caller, view.domains, tenants_of)
        return VmGpuList(
            items=[
                gpu_public(gpu, uses[gpu.device_uuid], allocations.get(gpu.device_uuid, (0, 0)), visible)
                for gpu in view.gpus
            ]
        )
