"""Level-triggered reconcile of VM hostdevs: records (what gpupool did) against domains and host.

Safe to run at any time and after a crash at any step; run at start-up, after lifecycle events and
periodically. For each recorded claim:
- its claim ended elsewhere (`gpupool release`, a reclaim) -> hostdevs detached, vGPUs removed;
- its domain is gone (undefined, or a transient domain destroyed) -> the same, claim released;
- interrupted while `attaching` -> kept if the domain has every hostdev, else undone and released;
- interrupted while `detaching` -> finished;
- a hostdev no longer in the domain (removed by hand) -> the rest undone, claim released;
- an mdev or VF type lost (host reboot) -> made again with the same UUID/type.
A bound VM claim without records (crash before they were written) is released. A hostdev on a GPU
that gpupool did not record is reported (log, event, `gpupool vm list`), never adopted or removed.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from gpupool.devices.libvirt_host import DomainState
from gpupool.errors import GpupoolError
from gpupool.model import ClaimState
from gpupool.model.vm import VM_DOMAIN_LABEL, HostdevState, VmHostdevRecord
from gpupool.vms import hostdevs
from gpupool.vms.manager import ACTOR, VmManager
from gpupool.vms.view import FoundHostdev, HostView

log = logging.getLogger("gpupool.vms")


@dataclass(frozen=True)
class Unrecorded:
    """A GPU hostdev in a domain that gpupool did not put there."""

    domain: str
    domain_uuid: str
    found: FoundHostdev


@dataclass
class ReconcileReport:
    kept: list[str] = field(default_factory=list)  # claims whose hostdevs are in place
    released: dict[str, str] = field(default_factory=dict)  # claim -> why
    rebuilt: list[str] = field(default_factory=list)  # claims whose vGPU was made again
    unrecorded: list[Unrecorded] = field(default_factory=list)


def holds(domain: DomainState, record: VmHostdevRecord) -> bool:
    hostdev = hostdevs.hostdev_of(record)
    return domain.config.holds(hostdev) or (domain.active and domain.live.holds(hostdev))


class Reconciler:
    def __init__(self, manager: VmManager) -> None:
        self.manager = manager
        self.unrecorded: list[Unrecorded] = []
        self._reported: set[tuple[str, str]] = set()

    def run(self) -> ReconcileReport:
        manager = self.manager
        with manager.lock:
            view = manager.views.get(fresh=True)
            report = ReconcileReport()
            records = manager.records.records()
            by_claim: dict[str, list[VmHostdevRecord]] = defaultdict(list)
            for record in records:
                by_claim[record.claim_id].append(record)
            for claim_id, mine in by_claim.items():
                try:
                    self._claim(view, claim_id, mine, report)
                except GpupoolError as exc:  # one claim's trouble must not stop the others
                    log.warning("reconcile of claim %s: %s", claim_id, exc.message)
            self._orphans(set(by_claim), report)
            self._report_unrecorded(manager.views.get(fresh=True), report)
            return report

    def stale(self) -> bool:
        """A recorded claim ended outside the adapter (`gpupool release`, a reclaim): a cheap check
        (no libvirt call) that lets the watcher detach it within seconds."""
        store = self.manager.pool.store
        claims = {record.claim_id for record in self.manager.records.records()}
        return any(not store.get_claim(claim_id).state.is_active for claim_id in claims)

    def _claim(
        self, view: HostView, claim_id: str, records: list[VmHostdevRecord], report: ReconcileReport
    ) -> None:
        manager = self.manager
        claim = manager.pool.store.get_claim(claim_id)
        domain = view.domain_by_uuid(records[0].domain_uuid)
        state = records[0].state
        if not claim.state.is_active:
            why = f"claim {claim.state.value}" + (f" ({claim.reason})" if claim.reason else "")
            self._tear_down(records, why, report)
        elif domain is None:
            self._tear_down(records, f"domain {records[0].domain} is gone (undefined or destroyed)", report)
        elif state == HostdevState.DETACHING:
            self._tear_down(records, "a detach was interrupted; finished now", report)
        elif state == HostdevState.ATTACHING and not all(holds(domain, r) for r in records):
            manager.undo(domain.name, records)
            manager.release_claim(claim, "an attach was interrupted before it finished; undone")
            report.released[claim_id] = "attach interrupted"
        elif not all(holds(domain, r) for r in records):
            self._tear_down(
                records, f"its hostdev was removed from domain {domain.name} outside gpupool", report
            )
        else:
            if domain.name != records[0].domain:
                manager.records.rename_domain(domain.uuid, domain.name)
            if state == HostdevState.ATTACHING:
                manager.records.set_state(claim_id, HostdevState.ATTACHED)
            if self._rebuild(view, records):
                report.rebuilt.append(claim_id)
            report.kept.append(claim_id)

    def _rebuild(self, view: HostView, records: list[VmHostdevRecord]) -> bool:
        rebuilt = False
        for record in records:
            if hostdevs.build(record, view.gpu(record.device_uuid), self.manager.nodes, self.manager.files):
                rebuilt = True
                details = {"domain": record.domain, "hostdev": hostdevs.hostdev_of(record).key}
                self.manager.pool.store.add_event(
                    ACTOR, "vm.vgpu.rebuilt", record.claim_id, record.tenant, details
                )
        return rebuilt

    def _tear_down(self, records: list[VmHostdevRecord], reason: str, report: ReconcileReport) -> None:
        log.warning("claim %s on domain %s: %s", records[0].claim_id, records[0].domain, reason)
        self.manager.tear_down_claim(records, reason)
        report.released[records[0].claim_id] = reason

    def _orphans(self, recorded: set[str], report: ReconcileReport) -> None:
        """Bound VM claims with no records: the attach stopped before it wrote them."""
        store = self.manager.pool.store
        for claim in store.list_claims(states=[ClaimState.BOUND], limit=1_000_000):
            if VM_DOMAIN_LABEL in claim.spec.labels and claim.id not in recorded:
                reason = "an attach was interrupted before its hostdevs were recorded; released"
                self.manager.release_claim(claim, reason)
                report.released[claim.id] = reason

    def _report_unrecorded(self, view: HostView, report: ReconcileReport) -> None:
        recorded = {(r.domain_uuid, hostdevs.hostdev_of(r).key) for r in self.manager.records.records()}
        found = []
        for domain in view.domains:
            for item in view.hostdevs(domain):
                if item.gpu is None or (domain.uuid, item.hostdev.key) in recorded:
                    continue
                found.append(Unrecorded(domain.name, domain.uuid, item))
                key = (domain.uuid, item.hostdev.key)
                if key not in self._reported:
                    self._reported.add(key)
                    log.warning(
                        "domain %s holds %s on GPU %s, which gpupool did not attach: reported, left as it is",
                        domain.name,
                        item.hostdev.key,
                        item.gpu.address,
                    )
                    details = {
                        "domain": domain.name,
                        "hostdev": item.hostdev.key,
                        "gpu": str(item.gpu.address),
                    }
                    self.manager.pool.store.add_event(ACTOR, "vm.hostdev.unrecorded", details=details)
        self.unrecorded = found
        report.unrecorded = found
