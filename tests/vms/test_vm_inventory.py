"""The libvirt device backend on the test VM host (libvirt's test driver, real libvirt-python)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from vmhost import MDEV_GPU, SRIOV_GPU, VFIO_GPU, VmTestHost, vf_addresses

from gpupool.devices.host_files import HostFiles
from gpupool.devices.libvirt import LibvirtBackend, vm_device_uuid
from gpupool.devices.libvirt_host import LibvirtHost
from gpupool.errors import DeviceBackendError, NotFound
from gpupool.model import GiB, MiB
from gpupool.model.vm import HostdevMode, PciAddress


@pytest.fixture
def backend(vm_host: VmTestHost) -> Iterator[LibvirtBackend]:
    backend = LibvirtBackend(LibvirtHost(vm_host.uri), HostFiles(vm_host.root))
    yield backend
    backend.close()


def test_inventory_is_the_three_nvidia_gpus_with_their_pci_facts(backend: LibvirtBackend) -> None:
    gpus = backend.gpus()
    assert [str(g.address) for g in gpus] == [MDEV_GPU, SRIOV_GPU, VFIO_GPU]  # no NIC, no NVSwitch, no VF
    assert [g.index for g in gpus] == [0, 1, 2]
    assert {g.model for g in gpus} == {"A100-40GB"} and {g.memory_total_bytes for g in gpus} == {40960 * MiB}
    assert [g.driver for g in gpus] == ["nvidia", "nvidia", "vfio-pci"]  # sysfs: the test driver drops it
    assert [g.iommu_group for g in gpus] == [41, 81, 193]
    assert [g.numa_node for g in gpus] == [0, 1, 1]
    assert all(g.passthrough_capable for g in gpus)
    devices = backend.devices()
    assert [d.uuid for d in devices] == [g.device_uuid for g in gpus]
    assert devices[0].uuid == vm_device_uuid(backend.node, PciAddress.parse(MDEV_GPU))


def test_mdev_profiles_come_with_framebuffer_and_instances(backend: LibvirtBackend) -> None:
    gpu = backend.gpus()[0]
    assert [p.name for p in gpu.profiles] == [
        "A100-4C",
        "A100-5C",
        "A100-8C",
        "A100-10C",
        "A100-20C",
        "A100-40C",
    ]
    four = gpu.profile("A100-4C")
    assert four is not None and gpu.profile("nvidia-468") == four and gpu.profile("GRID A100-4C") == four
    assert (four.mechanism, four.type_id, four.framebuffer_bytes) == (HostdevMode.MDEV, "nvidia-468", 4 * GiB)
    assert (four.max_instances, four.available_instances, four.parents) == (10, 10, (gpu.address,))


def test_sriov_gpu_lists_its_16_vfs_and_their_vgpu_types(backend: LibvirtBackend) -> None:
    gpu = backend.gpus()[1]
    assert [str(vf.address) for vf in gpu.virtual_functions] == vf_addresses()
    assert gpu.max_virtual_functions == 16
    assert all(vf.driver == "nvidia" and vf.current_type is None for vf in gpu.virtual_functions)
    four = gpu.profile("A100-4C")
    assert four is not None and (four.mechanism, four.type_id) == (HostdevMode.VF, "557")
    assert (four.max_instances, four.available_instances, len(four.parents)) == (10, 10, 16)  # 10 fit in 40GB


def test_vf_with_a_type_set_is_no_longer_free(backend: LibvirtBackend, vm_host: VmTestHost) -> None:
    first = PciAddress.parse(vf_addresses()[0])
    backend.files.set_vf_type(first, "559")
    assert vm_host.vf_type(str(first)) == "559"
    gpu = backend.gpus()[1]
    assert gpu.virtual_functions[0].current_type == "559"
    assert first not in gpu.profile("A100-8C").parents  # type: ignore[union-attr]
    backend.files.set_vf_type(first, None)
    assert vm_host.vf_type(str(first)) == "0"


def test_test_driver_stands_in_for_mdev_creation_like_the_kernel(backend: LibvirtBackend) -> None:
    gpu = backend.gpus()[0]
    created = str(uuid.uuid4())
    backend.host.create_mdev(gpu.address, "nvidia-468", created)
    after = backend.gpus()[0]
    assert [m.uuid for m in after.mdevs] == [created]
    assert after.profile("A100-4C").available_instances == 9  # type: ignore[union-attr]
    assert after.profile("A100-8C").available_instances == 0  # type: ignore[union-attr]  # one type per GPU
    backend.host.remove_mdev(created)
    backend.host.remove_mdev(created)  # already gone: not an error
    assert backend.gpus()[0].profile("A100-8C").available_instances == 5  # type: ignore[union-attr]


def test_host_processes_holding_the_gpu_device_node_are_found(
    backend: LibvirtBackend, vm_host: VmTestHost
) -> None:
    node = vm_host.dev_node(MDEV_GPU)
    holder = subprocess.Popen(
        [sys.executable, "-c", f"f = open({str(node)!r}); import time; time.sleep(60)"],
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            gpus = backend.gpus()
            if gpus[0].host_pids:
                break
            time.sleep(0.05)
        assert gpus[0].host_pids == (holder.pid,)
        assert gpus[1].host_pids == () and gpus[2].host_pids == ()  # vfio-pci: no device node at all
        assert backend.gpus(with_processes=False)[0].host_pids == ()
    finally:
        holder.kill()
        holder.wait()


def test_domains_and_their_owners(backend: LibvirtBackend) -> None:
    states = {d.name: (d.active, d.persistent, d.config.owner) for d in backend.host.domains()}
    assert states == {
        "build-1": (False, True, None),
        "db-1": (True, True, "team-b"),
        "web-1": (False, True, "team-a"),
        "web-2": (True, True, "team-a"),
    }
    with pytest.raises(NotFound, match="unknown domain 'nope'"):
        backend.host.domain("nope")


def test_a_bad_uri_is_a_clear_backend_error(tmp_path: Path) -> None:
    pytest.importorskip("libvirt")
    with pytest.raises(DeviceBackendError, match="cannot connect"):
        LibvirtHost(f"test://{tmp_path}/missing.xml")
