"""The VM front door: attach GPUs to libvirt domains as claims, detach them, and say who holds what.

Attach = the pool binds a claim now (or says why not: a VM attach never waits in the queue), the
hostdevs are recorded `attaching`, the vGPUs are created and the `<hostdev>`s added to the domain;
any failure undoes what was done and releases the claim. Detach reverses it. `Reconciler` (see
`reconcile`) keeps domains, host and records in step afterwards. One lock serialises the VM
operations of this process; the scheduling lock is never held while waiting for it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence

from gpupool.devices.host_files import HostFiles
from gpupool.devices.libvirt import LibvirtBackend
from gpupool.devices.libvirt_host import Attached, DomainState, LibvirtHost
from gpupool.errors import Conflict, GpupoolError, NotFound
from gpupool.model import ADMIN, Claim, ClaimSpec, ClaimState, Tenant
from gpupool.model.vm import (
    PASSTHROUGH_LABEL,
    HostdevMode,
    HostdevState,
    VgpuProfile,
    VmGpu,
    VmHostdevRecord,
)
from gpupool.pool import PoolService
from gpupool.scheduler import DeviceLoad
from gpupool.store.vm_records import VmRecords
from gpupool.vms import hostdevs
from gpupool.vms.plan import plan_attach
from gpupool.vms.traits import annotate
from gpupool.vms.view import HostView

log = logging.getLogger("gpupool.vms")

VIEW_MAX_AGE_S = 2.0
"""A scheduling pass reuses a read of the host this young; VM operations always read afresh."""
ACTOR = "vms"


class ViewCache:
    """The latest `HostView`, behind its own lock (taken inside the scheduling lock: keep it leaf)."""

    def __init__(self, backend: LibvirtBackend, domains: LibvirtHost) -> None:
        self.backend = backend
        self.domains = domains
        self._lock = threading.Lock()
        self._view: HostView | None = None

    def get(self, fresh: bool = False, with_processes: bool = False) -> HostView:
        with self._lock:
            view = self._view
            if fresh or with_processes or view is None or time.monotonic() - view.taken_at > VIEW_MAX_AGE_S:
                view = HostView.read(self.backend, self.domains, with_processes)
                self._view = view
            return view


class VmManager:
    """VMs of one libvirt host as claims of `pool`.

    `backend` is the pool's libvirt device backend (GPUs; mdevs are made on its host); `domains`
    is where the VMs are, the same connection in production (`for_backend`).
    """

    def __init__(self, pool: PoolService, backend: LibvirtBackend, domains: LibvirtHost) -> None:
        self.pool = pool
        self.backend = backend
        self.nodes = backend.host
        self.domains = domains
        self.files: HostFiles = backend.files
        self.records = VmRecords(pool.store)
        self.views = ViewCache(backend, domains)
        self.lock = threading.RLock()

    @classmethod
    def for_backend(cls, pool: PoolService, backend: LibvirtBackend) -> VmManager:
        return cls(pool, backend, backend.host)

    def install(self) -> None:
        """Give the pool's scheduler the VM traits of every GPU."""
        self.pool.load_annotator = self.annotate

    def annotate(self, loads: list[DeviceLoad], spec: ClaimSpec | None) -> list[DeviceLoad]:
        passthrough = spec is not None and spec.labels.get(PASSTHROUGH_LABEL) == "true"
        view = self.views.get(with_processes=passthrough)
        bound = self.pool.store.list_claims(states=[ClaimState.BOUND], limit=1_000_000)
        return annotate(loads, view, bound, with_pids=passthrough)

    # ------------------------------------------------------------------ owners
    def owner_of(self, caller: Tenant, domain: DomainState) -> Tenant:
        """The tenant a domain's claims belong to: the tenant in its gpupool metadata (the admin
        may act for it), else the admin. A tenant may use only domains that name it."""
        owner = domain.config.owner
        if not caller.is_admin:
            if owner != caller.name:
                raise NotFound(f"unknown domain {domain.name!r} (or not assigned to tenant {caller.name})")
            return caller
        if owner is None or owner == ADMIN:
            return caller
        if owner not in {t.name for t in self.pool.store.list_tenants()}:
            raise Conflict(
                f"domain {domain.name!r} is assigned to tenant {owner!r}, which does not exist "
                f"(create it with `gpupool tenants create {owner}` or fix the domain's metadata)"
            )
        return Tenant(name=owner)

    def find_domain(self, caller: Tenant, view: HostView, name: str) -> DomainState:
        domain = view.domain_named(name)
        if domain is None:
            raise self._unknown_domain(caller, view, name)
        self.owner_of(caller, domain)
        return domain

    @staticmethod
    def _unknown_domain(caller: Tenant, view: HostView, name: str) -> NotFound:
        if caller.is_admin:
            known = ", ".join(d.name for d in view.domains) or "none"
            return NotFound(f"unknown domain {name!r} (domains on this host: {known})")
        return NotFound(f"unknown domain {name!r} (or not assigned to tenant {caller.name})")

    # ------------------------------------------------------------------ attach
    def attach(
        self,
        caller: Tenant,
        domain_name: str,
        gpus: int | None = None,
        profile: str | None = None,
        device: str | None = None,
    ) -> tuple[Claim, Attached, DomainState]:
        """Bind a claim for the domain and attach its hostdevs; returns the claim, where the
        hostdevs took effect, and the domain after the change."""
        with self.lock:
            view = self.views.get(fresh=True, with_processes=profile is None)
            domain = self.find_domain(caller, view, domain_name)
            owner = self.owner_of(caller, domain)
            plan = plan_attach(view, self.files, domain.name, gpus, profile, device)
            claim = self.pool.claim_now(owner, plan.spec, actor=caller.name)
            try:
                records = self._plan_records(view, claim, domain, plan.profile)
                self.records.add(records)
            except GpupoolError as exc:
                self.release_claim(claim, f"attach failed: {exc.message}")
                raise
            try:
                placed = self._realize(view, domain, records)
            except GpupoolError as exc:
                self.undo(domain.name, records)
                self.release_claim(claim, f"attach failed: {exc.message}")
                raise
            self.records.set_state(claim.id, HostdevState.ATTACHED)
            details = {
                "domain": domain.name,
                "mode": "vgpu" if plan.profile else "passthrough",
                "profile": plan.profile.name if plan.profile else None,
                "hostdevs": [hostdevs.hostdev_of(r).key for r in records],
                "live": placed.live,
                "config": placed.config,
            }
            self.pool.store.add_event(caller.name, "vm.attached", claim.id, owner.name, details)
            fresh = self.domains.domain(domain.name)
            return self.pool.store.get_claim(claim.id), placed, fresh

    def _plan_records(
        self, view: HostView, claim: Claim, domain: DomainState, profile: VgpuProfile | None
    ) -> list[VmHostdevRecord]:
        taken = {r.address for r in self.records.records() if r.mode != HostdevMode.PASSTHROUGH}
        records = []
        for binding in claim.bindings:
            gpu = view.gpu(binding.device_uuid)
            if gpu is None:
                raise Conflict(f"device {binding.device_uuid} is no longer on the host")
            record = hostdevs.plan_record(
                binding, gpu, profile, claim.id, claim.tenant, (domain.name, domain.uuid), taken
            )
            taken.add(record.address)
            records.append(record)
        return records

    def _realize(self, view: HostView, domain: DomainState, records: Sequence[VmHostdevRecord]) -> Attached:
        live, config, notes = True, True, []
        for record in records:
            hostdevs.build(record, view.gpu(record.device_uuid), self.nodes, self.files)
            placed = self.domains.attach(domain.name, hostdevs.hostdev_of(record))
            live, config = live and placed.live, config and placed.config
            if placed.note and placed.note not in notes:
                notes.append(placed.note)
        self.views.get(fresh=True)
        return Attached(live=live, config=config, note="; ".join(notes))

    def undo(self, domain_name: str, records: Sequence[VmHostdevRecord]) -> None:
        """Best effort: take the hostdevs off the domain and remove the vGPUs, then the records."""
        for record in records:
            for step in (
                lambda r=record: self.domains.detach(domain_name, hostdevs.hostdev_of(r)),
                lambda r=record: hostdevs.tear_down(r, self.nodes, self.files),
            ):
                try:
                    step()
                except NotFound:
                    pass
                except GpupoolError as exc:
                    log.warning("undo of %s on %s: %s", record.claim_id, domain_name, exc.message)
        if records:
            self.records.remove(records[0].claim_id)
        self.views.get(fresh=True)

    def release_claim(self, claim: Claim, reason: str) -> None:
        self.pool.release(Tenant(name=ADMIN), claim.id, reason=reason)

    # ------------------------------------------------------------------ detach
    def detach(self, caller: Tenant, domain_name: str, claim_id: str | None = None) -> list[str]:
        """Take gpupool's hostdevs off the domain (all, or one claim's) and release their claims.

        Works for a domain that no longer exists too (its records are found by name)."""
        with self.lock:
            view = self.views.get(fresh=True)
            domain = view.domain_named(domain_name)
            if domain is not None:
                self.owner_of(caller, domain)
                records = self.records.records(domain_uuid=domain.uuid)
            else:
                records = [r for r in self.records.records() if r.domain == domain_name]
            if not caller.is_admin:
                records = [r for r in records if r.tenant == caller.name]
            if not records and domain is None:
                raise self._unknown_domain(caller, view, domain_name)
            if claim_id is not None:
                records = [r for r in records if r.claim_id == claim_id]
                if not records:
                    raise NotFound(f"claim {claim_id} holds no GPU of domain {domain_name!r}")
            if not records:
                raise NotFound(f"domain {domain_name!r} holds no GPU from gpupool")
            released = []
            for claim in sorted({r.claim_id for r in records}):
                mine = [r for r in records if r.claim_id == claim]
                self.tear_down_claim(mine, f"detached from {domain_name} by {caller.name}", caller.name)
                released.append(claim)
            return released

    def tear_down_claim(self, records: Sequence[VmHostdevRecord], reason: str, actor: str = ACTOR) -> None:
        """Detach one claim's hostdevs (when its domain still has them), remove its vGPUs unless
        another domain uses them, forget the records and release the claim; safe to repeat."""
        claim_id, domain_uuid = records[0].claim_id, records[0].domain_uuid
        self.records.set_state(claim_id, HostdevState.DETACHING)
        view = self.views.get(fresh=True)
        domain = view.domain_by_uuid(domain_uuid)
        elsewhere = {
            found.hostdev.key
            for other in view.domains
            if other.uuid != domain_uuid
            for found in view.hostdevs(other)
        }
        for record in records:
            hostdev = hostdevs.hostdev_of(record)
            if domain is not None:
                with contextlib.suppress(NotFound):  # undefined meanwhile: nothing holds it any more
                    self.domains.detach(domain.name, hostdev)
            if hostdev.key in elsewhere:
                log.warning("%s is in use by another domain: left on the host", hostdev.key)
            else:
                hostdevs.tear_down(record, self.nodes, self.files)
        self.records.remove(claim_id)
        claim = self.pool.store.get_claim(claim_id)
        if claim.state.is_active:
            self.pool.release(Tenant(name=ADMIN), claim_id, reason=reason)
        details = {
            "domain": records[0].domain,
            "hostdevs": [hostdevs.hostdev_of(r).key for r in records],
            "reason": reason,
        }
        self.pool.store.add_event(actor, "vm.detached", claim_id, records[0].tenant, details)
        self.views.get(fresh=True)

    # ------------------------------------------------------------------- reads
    def gpus(self) -> list[VmGpu]:
        return list(self.views.get(fresh=True, with_processes=True).gpus)
