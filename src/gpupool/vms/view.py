"""One read of the VM host: its GPUs and its domains, and which GPU each domain hostdev points at."""

from __future__ import annotations

import time
from dataclasses import dataclass

from gpupool.devices.libvirt import LibvirtBackend
from gpupool.devices.libvirt_config import Hostdev, HostdevMdev, HostdevPCI
from gpupool.devices.libvirt_host import DomainState, LibvirtHost
from gpupool.model.vm import HostdevMode, VmGpu


@dataclass(frozen=True)
class FoundHostdev:
    """A hostdev of a domain (config, live or both) and the GPU it points at (None: not a GPU)."""

    hostdev: Hostdev
    gpu: VmGpu | None
    mode: HostdevMode


@dataclass(frozen=True)
class HostView:
    gpus: tuple[VmGpu, ...]
    domains: tuple[DomainState, ...]
    taken_at: float

    @classmethod
    def read(cls, backend: LibvirtBackend, domains: LibvirtHost, with_processes: bool = False) -> HostView:
        return cls(tuple(backend.gpus(with_processes)), tuple(domains.domains()), time.monotonic())

    def gpu(self, device_uuid: str) -> VmGpu | None:
        return next((g for g in self.gpus if g.device_uuid == device_uuid), None)

    def domain_named(self, name: str) -> DomainState | None:
        return next((d for d in self.domains if d.name == name), None)

    def domain_by_uuid(self, uuid: str) -> DomainState | None:
        return next((d for d in self.domains if d.uuid == uuid), None)

    def locate(self, hostdev: Hostdev) -> FoundHostdev:
        """The GPU a hostdev uses: a GPU's own PCI address is passthrough, a VF's is a VF vGPU, an
        mdev UUID is found among the GPUs' mdevs."""
        if isinstance(hostdev, HostdevPCI):
            for gpu in self.gpus:
                if gpu.address == hostdev.address:
                    return FoundHostdev(hostdev, gpu, HostdevMode.PASSTHROUGH)
                if any(vf.address == hostdev.address for vf in gpu.virtual_functions):
                    return FoundHostdev(hostdev, gpu, HostdevMode.VF)
            return FoundHostdev(hostdev, None, HostdevMode.PASSTHROUGH)
        assert isinstance(hostdev, HostdevMdev)
        for gpu in self.gpus:
            if any(m.uuid == hostdev.uuid for m in gpu.mdevs):
                return FoundHostdev(hostdev, gpu, HostdevMode.MDEV)
        return FoundHostdev(hostdev, None, HostdevMode.MDEV)

    def hostdevs(self, domain: DomainState) -> list[FoundHostdev]:
        """Every hostdev of the domain, in its config or in the running domain, once each."""
        seen: dict[str, Hostdev] = {}
        for hostdev in (*domain.config.hostdevs, *(domain.live.hostdevs if domain.active else ())):
            seen.setdefault(hostdev.key, hostdev)
        return [self.locate(h) for h in seen.values()]
