"""What `gpupool serve --libvirt URI` adds: the libvirt device backend and the VM front door."""

from __future__ import annotations

from pathlib import Path

from gpupool.devices.host_files import HostFiles
from gpupool.devices.libvirt import LibvirtBackend
from gpupool.devices.libvirt_host import LibvirtHost
from gpupool.errors import InvalidRequest
from gpupool.pool import PoolService
from gpupool.vms.manager import VmManager
from gpupool.vms.service import VmService


def open_libvirt_backend(uri: str, host_root: str | None = None) -> LibvirtBackend:
    """The GPUs of the libvirt host at `uri`; sysfs and /dev are read under `host_root` (default /)."""
    if uri.startswith("test://") and not uri.startswith("test:///"):
        raise InvalidRequest(f"libvirt: {uri!r}: a test-driver URI needs an absolute path (test:///ABS/PATH)")
    root = Path(host_root or "/")
    if not root.is_dir():
        raise InvalidRequest(f"libvirt-host-root: {root} is not a directory")
    return LibvirtBackend(LibvirtHost(uri), HostFiles(root))


def install_vm_rules(pool: PoolService) -> None:
    """Give the pool's scheduler the VM traits of every GPU (before it places anything)."""
    VmManager.for_backend(pool, _backend(pool)).install()


def start_vms(pool: PoolService, domains_uri: str | None = None) -> VmService:
    """Start the VM front door over a pool served from the libvirt backend. `domains_uri`: the
    domains live on another libvirt connection than the GPUs (`--libvirt-gpus`)."""
    backend = _backend(pool)
    domains = LibvirtHost(domains_uri) if domains_uri else backend.host
    return VmService.start(VmManager(pool, backend, domains))


def _backend(pool: PoolService) -> LibvirtBackend:
    if not isinstance(pool.backend, LibvirtBackend):
        raise InvalidRequest("VM support needs the libvirt device backend (`--libvirt URI`)")
    return pool.backend
