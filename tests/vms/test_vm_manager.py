"""The vms adapter in process over the test VM host: attach, detach, the VM rules, quotas, tenants,
lifecycle events and reconcile, each checked in libvirt's domain XML (parsed, never string-compared)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from vmhost import MDEV_GPU, SRIOV_GPU, VFIO_GPU, VmTestHost, vf_addresses
from vmpool import ADMIN_TENANT, TEAM_A, TEAM_B, VmPool, wait_for

from gpupool.devices.libvirt_config import HostdevMdev, HostdevPCI
from gpupool.errors import Conflict, GpupoolError, InvalidRequest, NotFound
from gpupool.model import ClaimSpec, ClaimState, GiB
from gpupool.model.quota import Quota
from gpupool.model.vm import VM_DOMAIN_LABEL, HostdevMode, HostdevState, PciAddress, VmHostdevRecord
from gpupool.store.quotas import QuotaRecords

PASSTHROUGH_FOR_LEGACY = (
    "<hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0xc1' "
    "slot='0x00' function='0x0'/></source></hostdev>"
)


@pytest.fixture
def vp(vm_host: VmTestHost, tmp_path: Path) -> Iterator[VmPool]:
    for index in range(1, 5):
        vm_host.add_domain(f"extra-{index}")
    opened = VmPool.open(vm_host, tmp_path / "pool.db")
    yield opened
    opened.close()


def gpu_of(vp: VmPool, claim_id: str) -> str:
    claim = vp.claim(claim_id)
    gpu = vp.manager.views.get(fresh=True).gpu(claim.bindings[0].device_uuid)
    assert gpu is not None
    return str(gpu.address)


def test_passthrough_attach_puts_a_managed_pci_hostdev_in_the_domain(vp: VmPool) -> None:
    claim, placed, _ = vp.manager.attach(ADMIN_TENANT, "build-1", gpus=1, device=VFIO_GPU)
    assert claim.state == ClaimState.BOUND and claim.tenant == "admin" and claim.spec.whole_gpu
    assert claim.spec.labels[VM_DOMAIN_LABEL] == "build-1"
    assert vp.config("build-1").hostdevs == (HostdevPCI(PciAddress.parse(VFIO_GPU), managed=True),)
    assert (placed.live, placed.config) == (False, True)  # build-1 is shut off
    (record,) = vp.manager.records.records(claim_id=claim.id)
    assert (record.mode, record.state, str(record.address)) == (
        HostdevMode.PASSTHROUGH,
        HostdevState.ATTACHED,
        VFIO_GPU,
    )


def test_mdev_vgpu_attach_creates_the_mdev_and_references_it(vp: VmPool) -> None:
    claim, _, _ = vp.manager.attach(ADMIN_TENANT, "web-1", profile="A100-4C", device=MDEV_GPU)
    assert claim.tenant == "team-a"  # the domain's metadata names its tenant; the admin acted for it
    assert (claim.spec.memory_bytes, claim.spec.compute_percent) == (4 * GiB, 10)
    (hostdev,) = vp.config("web-1").hostdevs
    assert isinstance(hostdev, HostdevMdev) and hostdev.model == "vfio-pci"
    gpu = vp.backend.gpus()[0]
    assert [(m.uuid, m.type_id, str(m.parent)) for m in gpu.mdevs] == [(hostdev.uuid, "nvidia-468", MDEV_GPU)]


def test_vf_vgpu_attach_sets_the_vf_type_and_hands_over_the_vf(vp: VmPool, vm_host: VmTestHost) -> None:
    claim, _, _ = vp.manager.attach(ADMIN_TENANT, "web-1", profile="A100-8C", device=SRIOV_GPU)
    first_vf = vf_addresses()[0]
    assert vp.config("web-1").hostdevs == (HostdevPCI(PciAddress.parse(first_vf), managed=False),)
    assert vm_host.vf_type(first_vf) == "559"
    assert vp.claim(claim.id).bindings[0].memory_bytes == 8 * GiB


def test_a_running_domain_gets_the_config_now_and_says_the_test_driver_cannot_hot_plug(vp: VmPool) -> None:
    _, placed, _ = vp.manager.attach(ADMIN_TENANT, "web-2", profile="A100-4C")
    assert placed.config and not placed.live and "cannot hot-plug" in placed.note
    assert len(vp.config("web-2").hostdevs) == 1


def test_two_vms_never_get_the_same_passthrough_gpu(vp: VmPool) -> None:
    domains = ["build-1", "extra-1", "extra-2", "extra-3", "extra-4"]
    results: dict[str, str] = {}
    errors: dict[str, str] = {}

    def attach(name: str) -> None:
        try:
            claim, _, _ = vp.manager.attach(ADMIN_TENANT, name, gpus=1)
            results[name] = gpu_of(vp, claim.id)
        except GpupoolError as exc:
            errors[name] = exc.message

    threads = [threading.Thread(target=attach, args=(name,)) for name in domains]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results.values()) == [MDEV_GPU, SRIOV_GPU, VFIO_GPU]  # three GPUs, three VMs, each once
    assert len(errors) == 2 and all("held whole by VM" in e for e in errors.values())
    held = [h for name in domains for h in vp.config(name).hostdevs]
    assert len(held) == len({h.key for h in held}) == 3


def test_two_vms_never_get_the_same_mdev(vp: VmPool) -> None:
    domains = ["build-1", "extra-1", "extra-2", "extra-3", "extra-4"]
    threads = [
        threading.Thread(
            target=vp.manager.attach,
            args=(ADMIN_TENANT, name),
            kwargs={"profile": "A100-4C", "device": MDEV_GPU},
        )
        for name in domains
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    mdevs = [h for name in domains for h in vp.config(name).hostdevs]
    assert len(mdevs) == 5 and all(isinstance(h, HostdevMdev) for h in mdevs)
    assert len({h.key for h in mdevs}) == 5
    assert len(vp.backend.gpus()[0].mdevs) == 5


def test_a_gpu_hosting_4c_refuses_an_8c_and_the_8c_goes_elsewhere(vp: VmPool) -> None:
    vp.manager.attach(ADMIN_TENANT, "extra-1", profile="A100-4C", device=MDEV_GPU)
    with pytest.raises(Conflict, match=f"{MDEV_GPU} host A100-4C vGPUs"):
        vp.manager.attach(ADMIN_TENANT, "extra-2", profile="A100-8C", device=MDEV_GPU)
    assert vp.config("extra-2").hostdevs == ()  # nothing half-done
    claim, _, _ = vp.manager.attach(ADMIN_TENANT, "extra-2", profile="A100-8C")
    assert gpu_of(vp, claim.id) == SRIOV_GPU


def test_detach_takes_the_hostdev_off_removes_the_vgpu_and_releases(vp: VmPool, vm_host: VmTestHost) -> None:
    mdev_claim, _, _ = vp.manager.attach(ADMIN_TENANT, "web-1", profile="A100-4C", device=MDEV_GPU)
    vf_claim, _, _ = vp.manager.attach(ADMIN_TENANT, "web-1", profile="A100-8C", device=SRIOV_GPU)
    assert len(vp.config("web-1").hostdevs) == 2
    assert vp.manager.detach(TEAM_A, "web-1", mdev_claim.id) == [mdev_claim.id]
    assert vp.claim(mdev_claim.id).state == ClaimState.RELEASED
    assert vp.backend.gpus()[0].mdevs == ()
    assert len(vp.config("web-1").hostdevs) == 1
    assert vp.manager.detach(TEAM_A, "web-1") == [vf_claim.id]
    assert vp.config("web-1").hostdevs == () and vm_host.vf_type(vf_addresses()[0]) == "0"
    assert vp.manager.records.records() == []
    with pytest.raises(NotFound, match="holds no GPU"):
        vp.manager.detach(TEAM_A, "web-1")


def test_quota_counts_vgpu_framebuffer(vp: VmPool) -> None:
    QuotaRecords(vp.store).set_quota(Quota("team-a", limit_memory_bytes=8 * GiB), actor="admin")
    vp.manager.attach(TEAM_A, "web-1", profile="A100-4C")
    vp.manager.attach(TEAM_A, "web-2", profile="A100-4C")
    with pytest.raises(Conflict, match="memory limit of team-a is 8GiB"):
        vp.manager.attach(TEAM_A, "web-1", profile="A100-4C")


def test_tenants_use_only_the_domains_that_name_them(vp: VmPool) -> None:
    claim, _, _ = vp.manager.attach(TEAM_A, "web-1", profile="A100-4C")
    assert claim.tenant == "team-a"
    for domain in ("db-1", "build-1", "nope"):
        with pytest.raises(NotFound, match="not assigned to tenant team-a"):
            vp.manager.attach(TEAM_A, domain, profile="A100-4C")
    with pytest.raises(NotFound):
        vp.manager.detach(TEAM_B, "web-1")
    assert vp.claim(claim.id).state == ClaimState.BOUND


def test_bad_requests_change_nothing(vp: VmPool) -> None:
    with pytest.raises(NotFound, match="unknown domain 'nope'"):
        vp.manager.attach(ADMIN_TENANT, "nope", gpus=1)
    with pytest.raises(InvalidRequest, match="unknown vGPU profile 'A100-3C'"):
        vp.manager.attach(ADMIN_TENANT, "build-1", profile="A100-3C")
    with pytest.raises(NotFound, match="unknown GPU '9'"):
        vp.manager.attach(ADMIN_TENANT, "build-1", gpus=1, device="9")
    with pytest.raises(InvalidRequest, match="does not offer"):
        vp.manager.attach(ADMIN_TENANT, "build-1", profile="A100-4C", device=VFIO_GPU)
    assert vp.store.list_claims() == [] and vp.manager.records.records() == []


def test_a_failed_attach_is_undone_and_its_claim_released(vp: VmPool, vm_host: VmTestHost) -> None:
    broken = vm_host.root / "sys/bus/pci/devices" / vf_addresses()[0] / "nvidia/current_vgpu_type"
    broken.unlink()
    broken.mkdir()  # writing the VF type now fails, as a driver refusing it would
    with pytest.raises(GpupoolError, match="cannot set the vGPU type"):
        vp.manager.attach(ADMIN_TENANT, "web-1", profile="A100-4C", device=SRIOV_GPU)
    (claim,) = vp.store.list_claims(states=[ClaimState.RELEASED])
    assert "attach failed" in claim.reason
    assert vp.config("web-1").hostdevs == () and vp.manager.records.records() == []


def test_undefining_a_domain_gives_its_gpus_back(vp: VmPool) -> None:
    claim, _, _ = vp.manager.attach(ADMIN_TENANT, "extra-1", profile="A100-4C", device=MDEV_GPU)
    vp.libvirt._connection().lookupByName("extra-1").undefine()  # the test driver's own connection
    wait_for(lambda: vp.claim(claim.id).state == ClaimState.RELEASED, what="the claim to be released")
    assert "is gone" in vp.claim(claim.id).reason
    wait_for(lambda: vp.backend.gpus()[0].mdevs == (), what="the mdev to be removed")
    assert vp.manager.records.records() == []


def test_destroying_a_transient_domain_gives_its_gpus_back_but_stopping_a_persistent_one_does_not(
    vp: VmPool,
) -> None:
    running, _, _ = vp.manager.attach(ADMIN_TENANT, "db-1", gpus=1)
    conn = vp.libvirt._connection()
    conn.lookupByName("db-1").destroy()  # persistent: stopped, its config still holds the GPU
    transient_xml = (
        "<domain type='test'><name>tmp-1</name><memory>1048576</memory><os><type>hvm</type></os></domain>"
    )
    conn.createXML(transient_xml, 0)
    temporary, _, _ = vp.manager.attach(ADMIN_TENANT, "tmp-1", profile="A100-4C")
    passes = vp.vms.watcher.passes  # type: ignore[union-attr]
    conn.lookupByName("tmp-1").destroy()
    wait_for(lambda: vp.claim(temporary.id).state == ClaimState.RELEASED, what="the transient VM's claim")
    wait_for(lambda: vp.vms.watcher.passes > passes)  # type: ignore[union-attr]
    assert vp.claim(running.id).state == ClaimState.BOUND


def test_a_claim_released_elsewhere_is_detached_within_seconds(vp: VmPool) -> None:
    claim, _, _ = vp.manager.attach(ADMIN_TENANT, "web-1", profile="A100-4C", device=MDEV_GPU)
    vp.pool.release(ADMIN_TENANT, claim.id, reason="gpupool release")  # no libvirt event follows

    def detached() -> list[str]:
        return [
            e.details["reason"] for e in vp.store.list_events(claim_id=claim.id) if e.action == "vm.detached"
        ]

    wait_for(lambda: bool(detached()), what="the watcher to detach it")
    assert detached() == ["claim released (gpupool release)"]
    assert vp.config("web-1").hostdevs == () and vp.backend.gpus()[0].mdevs == ()
    assert vp.manager.records.records() == []


def test_reconcile_releases_a_claim_whose_hostdev_was_removed_by_hand(vp: VmPool) -> None:
    claim, _, _ = vp.manager.attach(ADMIN_TENANT, "web-1", gpus=1, device=VFIO_GPU)
    vp.libvirt.detach("web-1", HostdevPCI(PciAddress.parse(VFIO_GPU)))  # `virsh detach-device`
    vp.vms.reconciler.run()  # (the redefine's event may have woken the watcher first: same outcome)
    assert vp.claim(claim.id).state == ClaimState.RELEASED
    assert "removed from domain web-1 outside gpupool" in vp.claim(claim.id).reason


def test_reconcile_rebuilds_a_lost_mdev_with_the_same_uuid(vp: VmPool) -> None:
    claim, _, _ = vp.manager.attach(ADMIN_TENANT, "web-1", profile="A100-4C", device=MDEV_GPU)
    (hostdev,) = vp.config("web-1").hostdevs
    assert isinstance(hostdev, HostdevMdev)
    vp.backend.host.remove_mdev(hostdev.uuid)  # as a host reboot drops a transient mdev
    report = vp.vms.reconciler.run()
    assert claim.id in report.kept
    assert [m.uuid for m in vp.backend.gpus()[0].mdevs] == [hostdev.uuid]
    assert [e.claim_id for e in vp.store.list_events() if e.action == "vm.vgpu.rebuilt"] == [claim.id]


def test_reconcile_undoes_an_interrupted_attach_and_releases_an_unrecorded_vm_claim(vp: VmPool) -> None:
    domain = vp.libvirt.domain("web-1")
    spec = ClaimSpec(gpus=1, labels={VM_DOMAIN_LABEL: "web-1", "vm.gpupool.io/passthrough": "true"})
    recorded = vp.pool.claim_now(TEAM_A, spec)
    gpu = next(g for g in vp.backend.gpus() if g.device_uuid == recorded.bindings[0].device_uuid)
    vp.manager.records.add(
        [
            VmHostdevRecord(
                recorded.id,
                "team-a",
                "web-1",
                domain.uuid,
                gpu.device_uuid,
                HostdevMode.PASSTHROUGH,
                gpu.address,
                HostdevState.ATTACHING,
            )
        ]
    )  # crash after the record, before libvirt was touched
    unrecorded = vp.pool.claim_now(TEAM_A, spec)  # crash after the bind, before the record
    report = vp.vms.reconciler.run()
    assert set(report.released) == {recorded.id, unrecorded.id}
    assert vp.manager.records.records() == []
    assert vp.store.list_claims(states=[ClaimState.BOUND]) == []


def test_a_hostdev_gpupool_did_not_record_is_reported_never_adopted_or_removed(
    vm_host: VmTestHost, tmp_path: Path
) -> None:
    vm_host.add_domain("legacy-1", running=True, hostdevs=[PASSTHROUGH_FOR_LEGACY])
    vp = VmPool.open(vm_host, tmp_path / "pool.db")
    try:
        (found,) = vp.vms.reconciler.unrecorded
        assert (found.domain, found.found.hostdev, str(found.found.gpu.address)) == (  # type: ignore[union-attr]
            "legacy-1",
            HostdevPCI(PciAddress.parse(VFIO_GPU)),
            VFIO_GPU,
        )
        events = [e for e in vp.store.list_events() if e.action == "vm.hostdev.unrecorded"]
        assert len(events) == 1 and events[0].details["domain"] == "legacy-1"
        with pytest.raises(Conflict, match="held whole by VM legacy-1"):
            vp.manager.attach(ADMIN_TENANT, "build-1", gpus=1, device=VFIO_GPU)
        vp.vms.reconciler.run()
        assert vp.config("legacy-1").hostdevs == (HostdevPCI(PciAddress.parse(VFIO_GPU)),)  # left alone
        assert vp.store.list_claims() == []  # never adopted
        assert len([e for e in vp.store.list_events() if e.action == "vm.hostdev.unrecorded"]) == 1
    finally:
        vp.close()


def test_the_idle_reaper_never_takes_a_gpu_from_a_vm(vp: VmPool, tmp_path: Path) -> None:
    """libvirt reports no utilization for a GPU inside a VM: no sample is never "idle"."""
    from gpupool.agent import AgentOptions, NodeAgent

    claim, _, _ = vp.manager.attach(ADMIN_TENANT, "web-1", profile="A100-4C")
    agent = NodeAgent(vp.pool, AgentOptions(state_dir=tmp_path / "state", idle_timeout_s=5.0))
    agent.idle.reclaim((claim.bound_at or 0) + 3600)
    assert vp.claim(claim.id).state == ClaimState.BOUND
