"""The lifecycle-event path with a real libvirtd and QEMU (TCG), where they can run.

The GPUs still come from the test VM host (this machine has none); the domains live in a private
session libvirtd (see `libvirtdctl.py`), changed by a second client as `virsh` would. Hot-plugging a
GPU into a running QEMU needs the device, so that path is checked for its failure: undone cleanly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from libvirtdctl import Libvirtd, start_libvirtd, unavailable_reason
from vmhost import MDEV_GPU, VFIO_GPU, VmTestHost
from vmpool import ADMIN_TENANT, VmPool, wait_for

from gpupool.devices.libvirt_config import DomainConfig, HostdevMdev
from gpupool.devices.libvirt_host import LibvirtHost
from gpupool.errors import GpupoolError
from gpupool.model import ClaimState
from runctl import gpupool
from serverctl import ServerProcess

pytestmark = pytest.mark.skipif(unavailable_reason() is not None, reason=unavailable_reason() or "")

TCG_DOMAIN = """<domain type='qemu'>
  <name>{name}</name><memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os>
  <devices><emulator>/usr/bin/qemu-system-x86_64</emulator></devices>
</domain>"""


@pytest.fixture(scope="module")
def daemon() -> Iterator[Libvirtd]:
    pytest.importorskip("libvirt", reason="libvirt-python is missing: bash scripts/setup.sh --dev")
    try:
        started = start_libvirtd()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"libvirtd cannot run here: {exc}")
    yield started
    started.close()


@pytest.fixture
def virsh(daemon: Libvirtd) -> Iterator[Any]:
    """A second libvirt client on the daemon, standing in for `virsh`."""
    import libvirt

    conn = libvirt.open(daemon.uri)
    yield conn
    conn.close()
    cleanup = libvirt.open(daemon.uri)  # afresh: a test may have restarted the daemon
    for domain in cleanup.listAllDomains(0):
        persistent = domain.isPersistent()
        if domain.isActive():
            domain.destroy()
        if persistent:
            domain.undefine()
    cleanup.close()


def open_pool(vm_host: VmTestHost, tmp_path: Path, daemon: Libvirtd, resync_s: float) -> VmPool:
    return VmPool.open(vm_host, tmp_path / "pool.db", domains=LibvirtHost(daemon.uri), resync_s=resync_s)


def test_undefine_by_another_client_gives_the_gpu_back_through_the_event(
    vm_host: VmTestHost, tmp_path: Path, daemon: Libvirtd, virsh: Any
) -> None:
    virsh.defineXML(TCG_DOMAIN.format(name="tcg-1"))
    vp = open_pool(vm_host, tmp_path, daemon, resync_s=3600)  # only an event can wake the watcher
    try:
        claim, placed, _ = vp.manager.attach(ADMIN_TENANT, "tcg-1", profile="A100-4C", device=MDEV_GPU)
        assert (placed.live, placed.config, placed.note) == (False, True, "")  # real attachDeviceFlags
        (hostdev,) = vp.config("tcg-1").hostdevs
        assert isinstance(hostdev, HostdevMdev)
        assert [m.uuid for m in vp.backend.gpus()[0].mdevs] == [hostdev.uuid]
        virsh.lookupByName("tcg-1").undefine()
        wait_for(
            lambda: vp.claim(claim.id).state == ClaimState.RELEASED, what="the event to release the claim"
        )
        assert "tcg-1 is gone" in vp.claim(claim.id).reason
        wait_for(lambda: vp.backend.gpus()[0].mdevs == (), what="the mdev to be removed")
        assert vp.manager.records.records() == []
    finally:
        vp.close()


def test_a_failed_hot_plug_into_a_running_qemu_is_undone(
    vm_host: VmTestHost, tmp_path: Path, daemon: Libvirtd, virsh: Any
) -> None:
    running = virsh.createXML(TCG_DOMAIN.format(name="tcg-2"), 0)  # transient, running under TCG
    assert running.isActive()
    vp = open_pool(vm_host, tmp_path, daemon, resync_s=3600)
    try:
        with pytest.raises(GpupoolError, match="libvirt: cannot attach"):
            vp.manager.attach(ADMIN_TENANT, "tcg-2", gpus=1, device=VFIO_GPU)  # no such PCI device here
        (claim,) = vp.store.list_claims(states=[ClaimState.RELEASED])
        assert claim.reason.startswith("attach failed: libvirt: cannot attach")
        assert vp.libvirt.domain("tcg-2").live.hostdevs == () and vp.manager.records.records() == []
    finally:
        vp.close()


def test_a_restarted_libvirtd_is_reconnected_and_reconciled(
    vm_host: VmTestHost, tmp_path: Path, daemon: Libvirtd, virsh: Any
) -> None:
    import libvirt

    virsh.defineXML(TCG_DOMAIN.format(name="tcg-3"))
    vp = open_pool(vm_host, tmp_path, daemon, resync_s=0.5)
    try:
        claim, _, _ = vp.manager.attach(ADMIN_TENANT, "tcg-3", gpus=1, device=VFIO_GPU)
        daemon.stop()
        restarted = start_libvirtd(daemon.root)
        daemon.proc = restarted.proc
        again = libvirt.open(daemon.uri)
        try:
            again.lookupByName("tcg-3").undefine()  # kept by the daemon across its restart
        finally:
            again.close()
        wait_for(
            lambda: vp.claim(claim.id).state == ClaimState.RELEASED, what="the resync after reconnecting"
        )
    finally:
        vp.close()


def test_serve_with_real_domains_releases_on_undefine(
    vm_host: VmTestHost, tmp_path: Path, daemon: Libvirtd, virsh: Any
) -> None:
    """End to end: `gpupool serve --libvirt qemu:///session?socket=... --libvirt-gpus test:///...`
    and the CLI; `virsh undefine` of the VM gives its vGPU back."""
    virsh.defineXML(TCG_DOMAIN.format(name="tcg-4"))
    args = ("--libvirt", daemon.uri, "--libvirt-gpus", vm_host.uri, "--libvirt-host-root", str(vm_host.root))
    server = ServerProcess(home=tmp_path, simulate="", extra_args=args).start()
    try:
        attached = gpupool(server, "vm", "attach", "tcg-4", "--profile", "A100-4C", "--json")
        assert attached.returncode == 0, attached.stderr
        claim = json.loads(attached.stdout)["claim"]["id"]
        domain = virsh.lookupByName("tcg-4")
        (hostdev,) = DomainConfig.parse(domain.XMLDesc(libvirt_inactive())).hostdevs
        assert isinstance(hostdev, HostdevMdev)
        domain.undefine()

        def released() -> bool:
            shown = gpupool(server, "ps", "--all", "--json")
            return any(
                c["id"] == claim and c["state"] == "released" for c in json.loads(shown.stdout or "[]")
            )

        wait_for(released, what="the server to release the claim")
    finally:
        server.stop()


def libvirt_inactive() -> int:
    import libvirt

    return int(libvirt.VIR_DOMAIN_XML_INACTIVE)
