"""The VM front door: libvirt/KVM guests get whole GPUs (passthrough) or vGPU profiles as claims.

`VmManager` attaches and detaches, `Reconciler` keeps domains, host and records in step,
`VmWatcher` follows libvirt's lifecycle events, `VmService` is what `serve` and the API use.
The GPUs come from the `libvirt` device backend (`gpupool.devices.libvirt`).
"""

from gpupool.vms.manager import VmManager
from gpupool.vms.reconcile import Reconciler, ReconcileReport, Unrecorded
from gpupool.vms.service import VmService
from gpupool.vms.watcher import VmWatcher

__all__ = ["ReconcileReport", "Reconciler", "Unrecorded", "VmManager", "VmService", "VmWatcher"]
