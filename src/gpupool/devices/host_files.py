"""The VM host's files libvirt does not cover: PCI drivers, NVIDIA's VF vGPU types, GPU device nodes,
and the host processes that hold a GPU open.

Everything is read under `root` (`/` on a real host; a prepared tree in tests or in a container that
mounts the host elsewhere); processes are always this machine's (`proc`, default `/proc`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from gpupool.errors import DeviceBackendError
from gpupool.model.vm import PciAddress, profile_name

_TYPE_LINE = re.compile(r"^\s*(\d+)\s*:\s*(.+?)\s*$")
_MINOR_LINE = re.compile(r"^\s*Device Minor:\s*(\d+)\s*$", re.MULTILINE)


class HostFiles:
    """sysfs, `/proc/driver/nvidia` and `/dev` of the VM host, under `root`."""

    def __init__(self, root: Path | str = "/", proc: Path | str = "/proc") -> None:
        self.root = Path(root)
        self.proc = Path(proc)

    def _pci(self, address: PciAddress) -> Path:
        return self.root / "sys/bus/pci/devices" / str(address)

    def driver(self, address: PciAddress) -> str:
        """The kernel driver bound to the function (`nvidia`, `vfio-pci`), or "" when unbound."""
        link = self._pci(address) / "driver"
        try:
            return Path(os.readlink(link)).name
        except OSError:
            return ""

    def vf_vgpu_types(self, address: PciAddress) -> tuple[tuple[str, str], ...]:
        """(type id, profile name) a VF can take now (NVIDIA `nvidia/creatable_vgpu_types`)."""
        try:
            text = (self._pci(address) / "nvidia/creatable_vgpu_types").read_text()
        except OSError:
            return ()
        found = []
        for line in text.splitlines():
            match = _TYPE_LINE.match(line)
            if match:  # the header line ("ID : vGPU Name") has no number and is skipped
                found.append((match.group(1), profile_name(match.group(2))))
        return tuple(found)

    def vf_current_type(self, address: PciAddress) -> str | None:
        """The vGPU type id set on a VF (`nvidia/current_vgpu_type`; 0 means none)."""
        try:
            value = (self._pci(address) / "nvidia/current_vgpu_type").read_text().strip()
        except OSError:
            return None
        return None if value in ("", "0") else value

    def set_vf_type(self, address: PciAddress, type_id: str | None) -> None:
        """Give a VF a vGPU type (None: clear it), as NVIDIA's vendor VFIO framework expects."""
        path = self._pci(address) / "nvidia/current_vgpu_type"
        try:
            path.write_text(f"{type_id or 0}\n")
        except OSError as exc:
            raise DeviceBackendError(
                f"cannot set the vGPU type of VF {address} ({path}: {exc.strerror or exc})"
            ) from exc

    def device_node(self, address: PciAddress) -> Path | None:
        """`/dev/nvidiaN` of a GPU on the nvidia driver (N from /proc/driver/nvidia), else None."""
        info = self.root / "proc/driver/nvidia/gpus" / str(address) / "information"
        try:
            match = _MINOR_LINE.search(info.read_text())
        except OSError:
            return None
        return self.root / "dev" / f"nvidia{match.group(1)}" if match else None

    def processes_holding(self, paths: Iterable[Path]) -> dict[Path, tuple[int, ...]]:
        """For each path, the pids of this machine's processes with it open (like `fuser`).

        Processes we may not inspect are skipped; run as root to see every process.
        """
        wanted = {str(path): path for path in paths}
        found: dict[Path, set[int]] = {path: set() for path in wanted.values()}
        if not wanted:
            return {}
        try:
            entries = list(os.scandir(self.proc))
        except OSError:
            return {path: () for path in found}
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                fds = os.scandir(os.path.join(entry.path, "fd"))
            except OSError:
                continue
            with fds:
                for fd in fds:
                    try:
                        target = os.readlink(fd.path)
                    except OSError:
                        continue
                    if target in wanted:
                        found[wanted[target]].add(int(entry.name))
        return {path: tuple(sorted(pids)) for path, pids in found.items()}

    def process_name(self, pid: int) -> str:
        try:
            return (self.proc / str(pid) / "comm").read_text().strip()
        except OSError:
            return "?"
