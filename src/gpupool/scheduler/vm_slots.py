"""Per-GPU VM facts (`DeviceTraits`) as (nodes, slots) arrays, for the VM rule plugins.

Built by the live snapshot only when some device carries traits (a pool served with `--libvirt`);
everywhere else `Cluster.slot_traits` is None and the VM rules cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:
    from gpupool.scheduler.contract import DeviceLoad


@dataclass(frozen=True)
class SlotTraits:
    hosted: NDArray[np.object_]  # vGPU profile hosted now, "" for none
    offers: dict[str, NDArray[np.int64]]  # profile -> instances creatable now (absent: not offered)
    passthrough_capable: NDArray[np.bool_]
    passed_through_to: NDArray[np.object_]  # the domain holding the GPU whole, "" for none
    vm_only: NDArray[np.bool_]
    host_claims: NDArray[np.bool_]
    host_pids: NDArray[np.object_]  # tuples of pids
    labels: NDArray[np.object_]  # how reasons name each GPU

    @classmethod
    def build(cls, rows: Sequence[Sequence[DeviceLoad]], width: int) -> SlotTraits | None:
        if not any(load.traits is not None for row in rows for load in row):
            return None
        shape = (len(rows), width)
        hosted = np.full(shape, "", dtype=object)
        holder = np.full(shape, "", dtype=object)
        pids = np.empty(shape, dtype=object)
        pids.fill(())
        labels = np.full(shape, "", dtype=object)
        capable = np.zeros(shape, dtype=np.bool_)
        vm_only = np.zeros(shape, dtype=np.bool_)
        host_claims = np.zeros(shape, dtype=np.bool_)
        offers: dict[str, NDArray[np.int64]] = {}
        for r, row in enumerate(rows):
            for s, load in enumerate(row):
                traits = load.traits
                if traits is None:
                    continue
                hosted[r, s] = traits.hosted_profile
                holder[r, s] = traits.passed_through_to
                pids[r, s] = traits.host_pids
                labels[r, s] = traits.label or load.device.uuid
                capable[r, s] = traits.passthrough_capable
                vm_only[r, s] = traits.vm_only
                host_claims[r, s] = traits.host_claims
                for profile, count in traits.profiles.items():
                    offers.setdefault(profile, np.full(shape, -1, dtype=np.int64))[r, s] = count
        return cls(hosted, offers, capable, holder, vm_only, host_claims, pids, labels)

    def offered(self, profile: str) -> NDArray[np.bool_]:
        """GPUs that offer the profile at all (full or not)."""
        counts = self.offers.get(profile)
        return np.zeros(self.hosted.shape, dtype=np.bool_) if counts is None else counts >= 0

    def creatable(self, profile: str) -> NDArray[np.bool_]:
        """GPUs where the host can create one more instance of the profile now."""
        counts = self.offers.get(profile)
        return np.zeros(self.hosted.shape, dtype=np.bool_) if counts is None else counts > 0

    def names(self, where: NDArray[np.bool_]) -> str:
        """The GPUs where `where` is true, by label, for a reason."""
        found = sorted(str(label) for label in self.labels[where])
        return ", ".join(found[:8]) + (f" and {len(found) - 8} more" if len(found) > 8 else "")

    def values(self, field: NDArray[np.object_], where: NDArray[np.bool_]) -> str:
        """The distinct non-empty values of an object field where `where` is true."""
        return ", ".join(sorted({str(value) for value in field[where] if value}))
